// prom-client's registry and metric classes, loaded without its index: that also loads default process metrics, Summary, Pushgateway and @opentelemetry/api (~1.5 MiB heap, ~10 MiB RSS measured in isolation) that smesh never uses.
import type * as prom from 'prom-client';

/* eslint-disable @typescript-eslint/no-require-imports -- deep requires on purpose (see above); the types come from prom-client's index */
export const Registry: typeof prom.Registry = require('prom-client/lib/registry');
export const Counter: typeof prom.Counter = require('prom-client/lib/counter');
export const Gauge: typeof prom.Gauge = require('prom-client/lib/gauge');
export const Histogram: typeof prom.Histogram = require('prom-client/lib/histogram');
/* eslint-enable @typescript-eslint/no-require-imports */

export type Registry = prom.Registry;
export type Counter<T extends string = string> = prom.Counter<T>;
export type Gauge<T extends string = string> = prom.Gauge<T>;
export type Histogram<T extends string = string> = prom.Histogram<T>;
