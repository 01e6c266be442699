// @vpnpanel/render — pure renderers from (subscriber, nodes) to client documents. No I/O.
// Entry points: pickFormat (which document), renderSubscription (the document and its headers),
// validateInbound / validate*Template (called by the API on save).

export { clashProxies, clashProxy } from "./clash-meta";
export {
  buildClashDocument,
  DEFAULT_CLASH_TEMPLATE,
  renderClashMeta,
  validateClashTemplate,
} from "./clash-template";
export {
  CLIENT_RULES,
  type FormatChoice,
  normalizeFormat,
  pickFormat,
  SUBSCRIPTION_FORMATS,
  type SubscriptionFormat,
} from "./client-rules";
export {
  asciiFileName,
  contentDispositionHeader,
  profileTitleHeader,
  type SubscriptionHeaderInput,
  subscriptionHeaders,
  subscriptionUserinfoHeader,
  wireguardFileName,
} from "./headers";
export { escapeHtml, type HtmlPageInput, renderHtmlPage } from "./html";
export { LinkParseError, type ParsedLink, parseShareLink, parseSubscriptionBody } from "./parse-links";
export { NO_SERVERS_REASON, placeholderWireguardProxy, placeholderXrayProxy } from "./placeholder";
export { type QrOptions, qrSvg } from "./qr";
export {
  DEFAULT_REMARK_TEMPLATE,
  REMARK_VARIABLES,
  type RemarkContext,
  type RemarkVariable,
  renderRemark,
  validateRemarkTemplate,
} from "./remark-template";
export {
  claimUniqueName,
  DEFAULT_ALLOWED_IPS,
  type ResolvedProxy,
  type ResolveOptions,
  resolveProxies,
  type SkippedEntry,
  type WireguardProxy,
  type XrayProxy,
} from "./resolve-proxies";
export {
  linksBase64Body,
  linksPlainBody,
  shadowsocksLink,
  shareLink,
  trojanLink,
  vlessLink,
  vmessLink,
  wireguardLink,
} from "./share-links";
export { singboxEntries } from "./singbox";
export {
  buildSingboxDocument,
  DEFAULT_SINGBOX_TEMPLATE,
  renderSingbox,
  validateSingboxTemplate,
} from "./singbox-template";
export {
  CONTENT_TYPES,
  type RenderedSubscription,
  renderSubscription,
  type SubscriptionInput,
} from "./subscription";
export { PROXIES_TOKEN } from "./template-token";
export type * from "./types";
export {
  blockReason,
  daysLeft,
  effectiveStatus,
  formatBytes,
  formatDate,
  isExpired,
  isQuotaExhausted,
  remainingBytes,
  usedBytes,
} from "./usage";
export {
  FINGERPRINTS,
  isWireguardKey,
  SHADOWSOCKS_METHODS,
  validateInbound,
  validateWireguardEndpoint,
} from "./validate-inbound";
export { pickWireguardFile, type WireguardFile, wireguardConf, wireguardFiles } from "./wireguard-conf";
export { renderXrayJson, type XrayClientOptions, xrayClientConfig, xrayOutbound } from "./xray-json";
