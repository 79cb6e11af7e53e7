module github.com/ternmq/tern

go 1.24
