// Package admin holds tokenward's Prometheus metrics ([Metrics], and
// collectors that read the key sets, the deny list, the reloaded route rules,
// the listener's reloaded TLS certificate and the verified-token cache at
// scrape time) and the admin handler
// ([NewHandler]): /metrics, /healthz and /readyz. [*Metrics] implements proxy.Observer; the proxy
// records through that interface and does not depend on this package.
//
// # Security
//
//   - Metric labels are bounded: outcome, reason, kind, result and the
//     configured issuers — never a path, a subject, a header or a token.
//     Reasons come from middleware's fixed set; an upstream error kind or an
//     opaque-check result outside the known ones is counted under a known
//     one, not made a label value.
//   - /readyz lists each issuer's state (loaded, key count, last refresh,
//     last error), never key material; and each [Dependency] (the shared
//     DPoP replay store) as up or down with its fixed Problem text, never
//     the check's error, which could name an address or a credential. A
//     dependency down does not make /readyz 503: every replica shares it, so
//     all would leave the Service at once, bearer traffic included; the
//     requests that need it get 503 with Retry-After, and the metric
//     (tokenward_dpop_replay_store_up) is what to alert on.
//   - The handler has no authentication: serve it on its own address
//     (TOKENWARD_ADMIN_ADDR), reachable by the scraper and the kubelet only.
package admin
