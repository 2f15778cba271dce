// @tether/browser: the Tether real-time client in the browser. One Rust engine (SPEC.md)
// compiled to WebAssembly, driven by browser APIs; this module is its TypeScript API.

export { createClient, init, TetherClient, type WasmSource } from "./client.js";
export { PublishDroppedError, TetherError, TokenProviderError } from "./errors.js";
export {
  AckEvent,
  DropEvent,
  FallbackEvent,
  PolicyEvent,
  ReconnectScheduledEvent,
  ResetEvent,
  StateChangeEvent,
  TetherErrorEvent,
  TetherMessageEvent,
  TransportSelectedEvent,
  type TetherEventMap,
} from "./events.js";
export type {
  Ack,
  Cause,
  CauseName,
  Clamp,
  ClientOptions,
  DropReason,
  ErrorCode,
  FallbackReason,
  Json,
  Message,
  NetworkState,
  PlainCauseName,
  PolicyOverrides,
  PublishOptions,
  Queued,
  ResetReason,
  State,
  StateName,
  StoreOption,
  TokenProvider,
  Transport,
} from "./types.js";
