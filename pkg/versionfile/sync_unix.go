//go:build !windows

package versionfile

func isSyncUnsupported(error) bool { return false }
