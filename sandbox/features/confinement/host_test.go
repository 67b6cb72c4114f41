package confinement

import "os"

// expectHost: MCPJAIL_EXPECT_HOST=1 says this is one of the project's
// machines (kernel 6.18, Landlock ABI 7), whose facts the tests then assert.
func expectHost() bool { return os.Getenv("MCPJAIL_EXPECT_HOST") == "1" }
