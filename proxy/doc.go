// Package proxy is the gateway: the HTTP server, its routes, and the request
// pipeline every agent request goes through (authenticate, classify,
// authorize, audit the intent, forward, filter and mask the response, audit
// the completion). It owns forwarding and header and link hygiene.
//
// It must never let a request reach an upstream before its audit intent is
// durable, never forward an agent's credential, and never pass a response
// it could not filter.
package proxy
