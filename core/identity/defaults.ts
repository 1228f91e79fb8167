// Identity defaults shared by the in-process CA, the control plane's CA and the remote-CA client, kept in a module that loads nothing.

/** Requested/issued leaf certificate lifetime when none is configured. */
export const DEFAULT_LEAF_TTL_SECONDS = 24 * 3600;
