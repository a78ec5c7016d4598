module userve.dev/hack/tools/wget

go 1.26.0
