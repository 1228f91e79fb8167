// Identity defaults shared by the CAs, the remote-CA client, config, the xDS contract and the agent's options, kept in a module that loads nothing.

/** Requested/issued leaf certificate lifetime when none is configured. */
export const DEFAULT_LEAF_TTL_SECONDS = 24 * 3600;

/** The mesh trust domain until a MeshConfig says otherwise (and of workloads with an empty trust_domain); config files and the control plane's identity default to it too. */
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';
