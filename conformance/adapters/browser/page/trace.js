// Debugging aid (TETHER_ADAPTER_TRACE=1): logs every WebSocket and fetch of the page with its
// timing to the console, which the adapter forwards to stderr (tokens redacted there).
(() => {
  const T = () => performance.now().toFixed(1);
  const W = WebSocket;
  const Traced = function (url, protocols) {
    const ws = protocols === undefined ? new W(url) : new W(url, protocols);
    console.log(`${T()} ws new ${url}`);
    ws.addEventListener("open", () => console.log(`${T()} ws open`));
    ws.addEventListener("close", (e) => console.log(`${T()} ws close ${e.code}`));
    return ws;
  };
  Traced.prototype = W.prototype;
  Object.assign(Traced, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  window.WebSocket = Traced;
  const F = window.fetch;
  window.fetch = async (r, init) => {
    const url = typeof r === "string" ? r : r.url;
    console.log(`${T()} fetch ${url}`);
    try {
      const x = await F(r, init);
      console.log(`${T()} fetch answered ${x.status} ${url}`);
      return x;
    } catch (e) {
      console.log(`${T()} fetch failed ${e.name} ${url}`);
      throw e;
    }
  };
})();
