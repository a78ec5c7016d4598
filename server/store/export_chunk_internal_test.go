package store

// SetExportChunk makes exports complete n users at a time, so tests cover
// several chunks with a few users; it returns the restore.
func SetExportChunk(n int) (restore func()) {
	old := exportChunk
	exportChunk = n
	return func() { exportChunk = old }
}
