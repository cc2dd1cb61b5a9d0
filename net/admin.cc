#include "net/admin.h"

#include "core/metrics.h"
#include "core/shard_gather.h"
#include "net/auth/access.h"
#include "net/json.h"
#include "net/rest.h"
#include "net/router.h"

namespace runnel {
namespace {

struct Route {
  std::string_view path;
  void (*handle)(Reactor&, const NodeInfo&, const HttpRequest&, HttpResponder);
};

void handle_health(Reactor& reactor, const NodeInfo&, const HttpRequest&, HttpResponder responder) {
  responder.respond(HttpResponse::json(200, fmt::format("{{\"status\":\"ok\",\"shard\":{}}}\n", reactor.shard())));
}

void handle_ready(Reactor&, const NodeInfo& node, const HttpRequest&, HttpResponder responder) {
  if (node.ready.load(std::memory_order_acquire)) {
    responder.respond(HttpResponse::json(200, "{\"ready\":true}\n"));
  } else {
    responder.respond(HttpResponse::json(503, "{\"ready\":false}\n"));
  }
}

void handle_metrics(Reactor& reactor, const NodeInfo&, const HttpRequest&, HttpResponder responder) {
  // Each shard copies its own registry; this shard merges and renders.
  auto* pending = new HttpResponder(std::move(responder));
  gather_from_shards<MetricsSnapshot>(
      reactor, [](Reactor& shard) { return shard.metrics().snapshot(); },
      [pending](std::vector<MetricsSnapshot> shards) {
        std::unique_ptr<HttpResponder> owned(pending);
        shards.push_back(collect_process_metrics());
        HttpResponse response;
        response.content_type = "text/plain; version=0.0.4; charset=utf-8";
        response.body = render_prometheus(shards);
        owned->respond(std::move(response));
      });
}

void handle_config(Reactor&, const NodeInfo& node, const HttpRequest&, HttpResponder responder) {
  responder.respond(HttpResponse::json(200, config_to_json(node.config) + "\n"));
}

constexpr Route kRoutes[] = {
    {"/health", handle_health},
    {"/ready", handle_ready},
    {"/metrics", handle_metrics},
    {"/v1/config", handle_config},
};

}  // namespace

HttpHandler make_admin_handler(Reactor& reactor, const NodeInfo& node, Router& streams) {
  return [&reactor, &node, &streams](const HttpRequest& request, HttpResponder responder) {
    // Access control: /health and /ready stay open (probes), /metrics too
    // if configured; everything else needs a valid bearer token.
    const TokenInfo* who = nullptr;
    const bool open_path = request.path == "/health" || request.path == "/ready" ||
                           (request.path == "/metrics" && node.config.auth_metrics_open);
    auth::Principal principal;
    if (node.config.auth_enabled && !open_path) {
      auth::Refusal refusal{};
      const uint64_t now_ms = static_cast<uint64_t>(Reactor::clock_realtime_ms());
      Status s = principal.sign_in(streams.stores()->local().catalog(),
                                   auth::bearer_of(request.header("Authorization")), now_ms, &refusal);
      if (s) who = principal.current(streams.stores()->local().catalog(), now_ms, &refusal);
      if (who == nullptr) {
        streams.count_refusal(refusal);
        HttpResponse response = rest::error_response(s ? auth::unauthenticated(refusal) : s);
        response.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"runnel\"");
        responder.respond(std::move(response));
        return;
      }
    }
    for (const Route& route : kRoutes) {
      if (request.path != route.path) continue;
      if (request.method != "GET" && request.method != "HEAD") {
        HttpResponse response = HttpResponse::error(405, "method_not_allowed",
                                                    fmt::format("{} supports GET and HEAD", route.path));
        response.headers.emplace_back("Allow", "GET, HEAD");
        responder.respond(std::move(response));
        return;
      }
      route.handle(reactor, node, request, std::move(responder));
      return;
    }
    // Everything else is the REST API's (which answers 404 to what it does
    // not know). Its requests may need any shard's store: not before ready.
    rest::serve(reactor, streams, node.ready.load(std::memory_order_acquire), who, request, std::move(responder));
  };
}

}  // namespace runnel
