//go:build !windows

package durable

func isSyncUnsupported(error) bool { return false }
