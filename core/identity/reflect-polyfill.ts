// Minimal Reflect metadata API (getMetadata/getOwnMetadata/defineMetadata/metadata) that @peculiar/x509's DI container (tsyringe) requires; load before @peculiar/x509.

type Key = unknown;
const store = new WeakMap<object, Map<string | symbol | undefined, Map<Key, unknown>>>();

function table(target: object, property: string | symbol | undefined, create: boolean): Map<Key, unknown> | undefined {
  let byProp = store.get(target);
  if (!byProp) {
    if (!create) return undefined;
    store.set(target, (byProp = new Map()));
  }
  let t = byProp.get(property);
  if (!t && create) byProp.set(property, (t = new Map()));
  return t;
}

interface ReflectMetadataApi {
  defineMetadata(key: Key, value: unknown, target: object, property?: string | symbol): void;
  getOwnMetadata(key: Key, target: object, property?: string | symbol): unknown;
  getMetadata(key: Key, target: object, property?: string | symbol): unknown;
  hasMetadata(key: Key, target: object, property?: string | symbol): boolean;
  metadata(key: Key, value: unknown): (target: object, property?: string | symbol) => void;
}

const R = Reflect as unknown as Partial<ReflectMetadataApi>;
if (typeof R.getMetadata !== 'function') {
  const api: ReflectMetadataApi = {
    defineMetadata(key, value, target, property) {
      table(target, property, true)!.set(key, value);
    },
    getOwnMetadata(key, target, property) {
      return table(target, property, false)?.get(key);
    },
    getMetadata(key, target, property) {
      for (let o: object | null = target; o; o = Object.getPrototypeOf(o) as object | null) {
        const t = table(o, property, false);
        if (t?.has(key)) return t.get(key);
      }
      return undefined;
    },
    hasMetadata(key, target, property) {
      return api.getMetadata(key, target, property) !== undefined;
    },
    metadata(key, value) {
      return (target, property) => api.defineMetadata(key, value, target, property);
    },
  };
  Object.assign(Reflect, api);
}

export {};
