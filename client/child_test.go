package client_test

const childEnv = "TERN_CLIENT_TEST_CHILD"

func runChild() int { return 0 }
