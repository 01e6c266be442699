import { foundationFixtures } from "./foundation";
import { templateFixtures } from "./templates";
import type { Fixtures } from "./types";

// Each capability adds its fixtures file here; the matrix test fails for any route without one.
export const allFixtures: Fixtures = {
  ...foundationFixtures,
  ...templateFixtures,
};
