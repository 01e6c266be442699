import type { Clock, Logger, SecretBox } from "@vpnpanel/common";
import { VERSION } from "@vpnpanel/common";
import type { Db } from "@vpnpanel/db";
import type { ControlConfig } from "../config";
import { createIpPools } from "../ip-pools/ip-pools";
import { createPlansService } from "../plans/plans-service";
import { createUsersService } from "../users/users-service";
import { createWebhookDelivery } from "../webhooks/delivery";
import { createWebhooksService } from "../webhooks/webhooks-service";
import { createLifecycleJobs } from "./lifecycle-jobs";
import { createSubscriptionsService } from "./subscriptions-service";

/** The subscriber lifecycle (issue 3): plans, users, subscriptions, its scheduler jobs, webhooks. */
export function createLifecycleServices(
  config: ControlConfig,
  db: Db,
  box: SecretBox,
  clock: Clock,
  log: Logger,
) {
  const ipPools = createIpPools(
    { ipv4: config.WG_POOL_V4, ipv6: config.WG_POOL_V6, reservedHosts: config.WG_POOL_RESERVED_HOSTS },
    log,
  );
  const users = createUsersService({
    db,
    box,
    clock,
    pools: ipPools,
    publicUrl: config.PUBLIC_URL,
    bulkMax: config.BULK_MAX_USERS,
  });
  const policy = { allowHttp: config.WEBHOOK_ALLOW_HTTP, allowPrivate: config.WEBHOOK_ALLOW_PRIVATE };
  return {
    ipPools,
    plans: createPlansService(db),
    users,
    subscriptions: createSubscriptionsService({ db, box, clock, users }),
    lifecycleJobs: createLifecycleJobs({ db, clock }),
    webhooks: createWebhooksService({ db, box, clock, policy }),
    webhookDelivery: createWebhookDelivery({
      db,
      box,
      clock,
      log: log.child({ component: "webhooks" }),
      settings: {
        policy,
        timeoutSeconds: config.WEBHOOK_TIMEOUT_SECONDS,
        maxAttempts: config.WEBHOOK_MAX_ATTEMPTS,
        backoffBaseSeconds: config.WEBHOOK_BACKOFF_BASE_SECONDS,
        backoffMaxSeconds: config.WEBHOOK_BACKOFF_MAX_SECONDS,
        userAgent: `vpnpanel-webhooks/${VERSION}`,
      },
    }),
  };
}

export type LifecycleServices = ReturnType<typeof createLifecycleServices>;
