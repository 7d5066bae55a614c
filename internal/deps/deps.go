//go:build tools

// Package deps pins the modules the packages are being written against
// until every one of them is imported by real code.
package deps

import (
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/go-chi/chi/v5"
	_ "github.com/go-chi/chi/v5/middleware"
	_ "github.com/go-json-experiment/json"
	_ "github.com/go-json-experiment/json/jsontext"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/lestrrat-go/jwx/v3/jwa"
	_ "github.com/lestrrat-go/jwx/v3/jwk"
	_ "github.com/lestrrat-go/jwx/v3/jws"
	_ "github.com/lestrrat-go/jwx/v3/jwt"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/samply/golang-fhir-models/fhir-models/fhir"
	_ "github.com/tidwall/gjson"
	_ "github.com/tidwall/sjson"
	_ "go.yaml.in/yaml/v3"
	_ "modernc.org/sqlite"
)
