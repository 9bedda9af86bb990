package migrate

// accessRW is left to the steps on Windows.
func accessRW(string) error { return nil }
