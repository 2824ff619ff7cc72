package remote_test

func runProcessChild() {}
