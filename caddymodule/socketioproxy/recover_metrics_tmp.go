package socketioproxy

// TEMPORARY until the rui branch lands.

func recoveryHeld(delta int)       {}
func recoveryResult(result string) {}
func recoveryReplayed(n int)       {}
