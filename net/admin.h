#pragma once
// The admin HTTP API, served by every shard's HttpServer:
//   GET /health     — 200 while the process and this shard's loop run.
//   GET /ready      — 200 once recovery is done and every port is bound; 503 before.
//   GET /metrics    — Prometheus text: process figures plus every shard's series.
//   GET /v1/config  — the effective configuration as JSON.
//   /v1/buckets…, /v1/shards — the JSON REST API (net/rest.h; endpoints in
//                   net/README.md): buckets, streams, records, tails, shard
//                   statistics, consumer lag. 503 until the node is ready.
// Answers are JSON; errors are {"error":{"code":…,"message":…}}.

#include <atomic>
#include <string>

#include "core/config.h"
#include "core/reactor.h"
#include "net/http_connection.h"
#include "net/router.h"

namespace runnel {

// What every shard may read about the node. Written once at startup before
// the shards see it, except `ready`, which flips once.
struct NodeInfo {
  Config config;
  std::string version;
  std::atomic<bool> ready{false};
};

// Builds the request handler for one shard; `streams` is that shard's
// Router (the REST API's way in) and outlives the handler.
HttpHandler make_admin_handler(Reactor& reactor, const NodeInfo& node, Router& streams);

}  // namespace runnel
