// First start: enroll with the one-time token; every later start: load the stored identity. Renewal:
// a fresh key pair and CSR over the existing mTLS channel, well before the certificate expires.
// In both cases the key pair is generated here and only the CSR leaves the node.

import type { ChannelOptions } from "@grpc/grpc-js";
import { Metadata } from "@grpc/grpc-js";
import {
  clientCredentials,
  createCsr,
  enrollmentCredentials,
  exportPrivateKeyPem,
  generateKeyPair,
} from "@vpnpanel/pki";
import { EnrollmentClient, NodeControlClient } from "@vpnpanel/proto";
import type { Logger } from "pino";
import { describeIdentity, loadIdentity, type NodeIdentity, saveIdentity } from "./identity-store";

export interface EnrollmentParams {
  stateDir: string;
  enrollAddress: string | undefined;
  token: string | undefined;
  caPem: string | undefined;
  hostname: string;
  agentVersion: string;
  channelOptions?: ChannelOptions;
  deadlineMs?: number;
  logger: Logger;
}

export class EnrollmentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EnrollmentError";
  }
}

async function newKeyAndCsr(commonName: string): Promise<{ keyPem: string; csrPem: string }> {
  const keyPair = await generateKeyPair();
  const csrPem = await createCsr({ keyPair, commonName });
  return { keyPem: await exportPrivateKeyPem(keyPair.privateKey), csrPem };
}

/** Loads the stored identity, or enrolls once if there is none. */
export async function ensureIdentity(
  params: EnrollmentParams,
): Promise<{ identity: NodeIdentity; enrolled: boolean }> {
  const stored = await loadIdentity(params.stateDir);
  if (stored) {
    params.logger.info({ nodeId: stored.nodeId, notAfter: stored.notAfter }, "using stored node identity");
    return { identity: stored, enrolled: false };
  }
  const missing = [
    params.enrollAddress ? null : "AGENT_ENROLL_ADDRESS",
    params.token ? null : "AGENT_ENROLL_TOKEN",
    params.caPem ? null : "AGENT_CA_PEM_FILE or AGENT_CA_PEM",
  ].filter((name): name is string => name !== null);
  if (missing.length > 0)
    throw new EnrollmentError(`the node is not enrolled yet; first start needs ${missing.join(", ")}`);

  const { keyPem, csrPem } = await newKeyAndCsr(params.hostname);
  const client = new EnrollmentClient(
    params.enrollAddress as string,
    enrollmentCredentials({ caPem: params.caPem as string }),
    params.channelOptions,
  );
  try {
    const response = await new Promise<{ certificatePem: string; caChainPem: string; nodeId: string }>(
      (resolve, reject) =>
        client.enroll(
          {
            token: params.token as string,
            csrPem,
            agentVersion: params.agentVersion,
            hostname: params.hostname,
          },
          new Metadata(),
          { deadline: Date.now() + (params.deadlineMs ?? 30_000) },
          (error, res) =>
            error
              ? reject(new EnrollmentError(`enrollment failed: ${error.details || error.message}`))
              : resolve(res),
        ),
    );
    const issued = {
      certPem: response.certificatePem,
      keyPem,
      caPem: response.caChainPem || (params.caPem as string),
    };
    if (response.nodeId && response.nodeId !== describeIdentity(issued).nodeId)
      throw new EnrollmentError("the issued certificate names another node than the enrollment answer");
    const identity = await saveIdentity(params.stateDir, issued);
    params.logger.info({ nodeId: identity.nodeId, notAfter: identity.notAfter }, "node enrolled");
    return { identity, enrolled: true };
  } finally {
    client.close();
  }
}

/** When the certificate should be renewed: at `fraction` of its lifetime. */
export function renewalDueAt(
  identity: Pick<NodeIdentity, "notBefore" | "notAfter">,
  fraction: number,
): number {
  const from = identity.notBefore.getTime();
  return from + (identity.notAfter.getTime() - from) * fraction;
}

/** Renews over mTLS with the current identity and stores the new one; the caller swaps it in. */
export async function renewIdentity(params: {
  stateDir: string;
  address: string;
  current: NodeIdentity;
  channelOptions?: ChannelOptions;
  deadlineMs?: number;
}): Promise<NodeIdentity> {
  const { keyPem, csrPem } = await newKeyAndCsr(params.current.nodeId);
  const client = new NodeControlClient(
    params.address,
    clientCredentials({ ...params.current, caPem: params.current.caPem }),
    params.channelOptions,
  );
  try {
    const response = await new Promise<{ certificatePem: string; caChainPem: string }>((resolve, reject) =>
      client.renewCertificate(
        { csrPem },
        new Metadata(),
        { deadline: Date.now() + (params.deadlineMs ?? 30_000) },
        (error, res) =>
          error
            ? reject(new Error(`certificate renewal failed: ${error.details || error.message}`))
            : resolve(res),
      ),
    );
    const renewed = {
      certPem: response.certificatePem,
      keyPem,
      caPem: response.caChainPem || params.current.caPem,
    };
    // Checked before anything is written: a certificate for another node must never replace ours.
    if (describeIdentity(renewed).nodeId !== params.current.nodeId)
      throw new Error("renewed certificate names another node");
    const next = await saveIdentity(params.stateDir, renewed);
    return next;
  } finally {
    client.close();
  }
}
