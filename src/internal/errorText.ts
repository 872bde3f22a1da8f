/**
 * Error text helpers shared by the TLS transport and the command line's TLS file checks: the
 * runtime's error code and a one-line message (OpenSSL appends source locations after a newline).
 */

export const codeOf = (cause: unknown): string | undefined => {
  const code = (cause as { code?: unknown } | undefined)?.code
  return typeof code === "string" ? code : undefined
}

export const rawMessage = (cause: unknown): string => {
  const message = cause instanceof Error ? cause.message : String(cause)
  // OpenSSL messages carry a source location after the reason; keep the first line only.
  const line = message.split("\n")[0]!.trim()
  const code = codeOf(cause)
  return code === undefined ? line : `${code}: ${line}`
}
