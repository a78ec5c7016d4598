//go:build tools

// Package tools pins oapi-codegen, which make generate runs to write the
// Go client of the committed management document (openapi/client), and
// whose output a test compares with that client.
package tools

import (
	_ "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen"
)
