// Validates Kubernetes manifests against the object schemas that @kubernetes/client-node generates from the Kubernetes
// OpenAPI document (attribute type maps for field names and types, the generated declarations for required fields).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as k8s from '@kubernetes/client-node';

interface Attribute {
  readonly name: string;
  readonly baseName: string;
  readonly type: string;
}
interface ModelClass {
  getAttributeTypeMap(): Attribute[];
}

const MODELS_DIR = path.join(path.dirname(require.resolve('@kubernetes/client-node/package.json')), 'dist', 'gen', 'models');
const models = k8s as unknown as Record<string, unknown>;
const requiredCache = new Map<string, Set<string>>();

function modelClass(type: string): ModelClass | undefined {
  const c = models[type] as Partial<ModelClass> | undefined;
  return c && typeof c.getAttributeTypeMap === 'function' ? (c as ModelClass) : undefined;
}

/** Required properties of a model: the generated declaration marks optional ones with `?`. */
function requiredFields(type: string): Set<string> {
  let req = requiredCache.get(type);
  if (req) return req;
  req = new Set<string>();
  const file = path.join(MODELS_DIR, `${type}.d.ts`);
  if (fs.existsSync(file)) {
    for (const m of fs.readFileSync(file, 'utf8').matchAll(/^\s+'([A-Za-z0-9_$]+)'(\?)?:/gm)) if (!m[2]) req.add(m[1]);
  }
  requiredCache.set(type, req);
  return req;
}

/** Model class name for an apiVersion and kind: apps/v1 DaemonSet → V1DaemonSet, v1 Namespace → V1Namespace. */
export function modelFor(apiVersion: string, kind: string): string {
  const version = apiVersion.split('/').pop() ?? apiVersion;
  return version.charAt(0).toUpperCase() + version.slice(1) + kind;
}

function check(value: unknown, type: string, at: string, problems: string[]): void {
  if (value === null || value === undefined) return;
  if (type === 'any') return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (!Array.isArray(value)) return void problems.push(`${at}: expected a list (${type})`);
    value.forEach((v, i) => check(v, array[1], `${at}[${i}]`, problems));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value !== 'object' || Array.isArray(value)) return void problems.push(`${at}: expected a map (${type})`);
    for (const [k, v] of Object.entries(value)) check(v, map[1], `${at}.${k}`, problems);
    return;
  }
  switch (type) {
    case 'string':
    case 'String':
    case 'Date':
      if (typeof value !== 'string') problems.push(`${at}: expected a string, got ${JSON.stringify(value)}`);
      return;
    case 'number':
      if (typeof value !== 'number') problems.push(`${at}: expected a number, got ${JSON.stringify(value)}`);
      return;
    case 'boolean':
      if (typeof value !== 'boolean') problems.push(`${at}: expected a boolean, got ${JSON.stringify(value)}`);
      return;
    case 'IntOrString':
      if (typeof value !== 'string' && !Number.isInteger(value)) problems.push(`${at}: expected an integer or a string, got ${JSON.stringify(value)}`);
      return;
  }
  const model = modelClass(type);
  if (!model) return void problems.push(`${at}: no schema for type ${type}`);
  if (typeof value !== 'object' || Array.isArray(value)) return void problems.push(`${at}: expected an object (${type})`);
  const attrs = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a]));
  const obj = value as Record<string, unknown>;
  for (const [k, v] of Object.entries(obj)) {
    const a = attrs.get(k);
    if (!a) problems.push(`${at}.${k}: unknown field (not in ${type})`);
    else check(v, a.type, `${at}.${k}`, problems);
  }
  for (const r of requiredFields(type)) {
    const a = [...attrs.values()].find((x) => x.name === r);
    if (a && obj[a.baseName] === undefined) problems.push(`${at}.${a.baseName}: required by ${type}`);
  }
}

/** Problems of one manifest object ('' prefix = none): unknown fields, wrong types, missing required fields. */
export function validateObject(obj: Record<string, unknown>, where: string): string[] {
  const apiVersion = obj.apiVersion;
  const kind = obj.kind;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') return [`${where}: apiVersion and kind are required`];
  const type = modelFor(apiVersion, kind);
  if (!modelClass(type)) return [`${where}: no Kubernetes schema for ${apiVersion} ${kind}`];
  const problems: string[] = [];
  check(obj, type, `${where} ${kind}`, problems);
  return problems;
}
