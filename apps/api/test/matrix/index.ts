import { foundationFixtures } from "./foundation";
import { lifecycleFixtures } from "./lifecycle";
import { nodeFixtures } from "./nodes";
import { subFixtures } from "./sub";
import { templateFixtures } from "./templates";
import type { Fixtures } from "./types";

// Each capability adds its fixtures file here; the matrix test fails for any route without one.
export const allFixtures: Fixtures = {
  ...foundationFixtures,
  ...lifecycleFixtures,
  ...templateFixtures,
  ...subFixtures,
  ...nodeFixtures,
};
