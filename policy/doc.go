// Package policy owns who may do what: the configuration model (decoded
// strictly, validated with file:line problems), agents and roles, SMART scope
// parsing and scope mapping, authorization decisions, and agent
// authentication (JWT access tokens checked against an issuer's JWKS).
//
// It must never perform I/O on the request path beyond fetching a trusted
// issuer's JWKS, never log a token or PHI, and never import proxy.
package policy
