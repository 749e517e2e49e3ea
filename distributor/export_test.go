package distributor

// PausedPolls counts the distribute loop's waits on a paused inbox or
// worker queue, for tests.
func PausedPolls(d *Distributor) int64 { return d.pausedPolls.Load() }
