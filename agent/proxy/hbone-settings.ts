// HBONE's HTTP/2 settings, shared by both directions and both data planes (ztunnel's values where it has them).
export const HBONE_STREAM_WINDOW = 4 * 1024 * 1024;
export const HBONE_CONNECTION_WINDOW = 16 * 1024 * 1024;
export const HBONE_MAX_CONCURRENT_STREAMS = 100;
/**
 * node:http2 `maxSessionMemory` (MB) of HBONE sessions. Node counts data written to a session's streams and not yet
 * sent against it and refuses new streams past it (default 10); the relay lets up to ~320 KiB wait per stream
 * (relay.ts), so 100 streams of a busy session may hold ~32 MB.
 */
export const HBONE_MAX_SESSION_MEMORY_MB = 64;
