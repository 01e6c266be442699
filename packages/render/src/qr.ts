import QRCode from "qrcode";

// Error-correction levels from most to least robust. Long payloads (a WireGuard .conf with PSK and
// IPv6 runs to ~400 bytes) do not fit the high levels at sane sizes, so we step down until they do.
const LEVELS = ["M", "L"] as const;

export interface QrOptions {
  /** Rendered width in px written into the SVG; the viewBox keeps it scalable either way. */
  width?: number;
  /** Quiet zone in modules; scanners need ~4, 2 is fine on a white page. */
  margin?: number;
}

/**
 * An SVG QR code for a link or a .conf. The SVG contains only paths generated from the payload's
 * bits, never the payload text, so it is safe to inline in HTML without escaping.
 */
export async function qrSvg(text: string, options: QrOptions = {}): Promise<string> {
  let lastError: unknown;
  for (const level of LEVELS) {
    try {
      return await QRCode.toString(text, {
        type: "svg",
        errorCorrectionLevel: level,
        margin: options.margin ?? 2,
        ...(options.width !== undefined ? { width: options.width } : {}),
      });
    } catch (err) {
      // qrcode throws "The amount of data is too big…" when the payload does not fit this level.
      lastError = err;
    }
  }
  throw lastError instanceof Error ? lastError : new Error("payload too large for a QR code");
}
