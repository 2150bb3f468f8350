package socketioproxy

import (
	"os"
	"strings"
	"sync"

	"go.uber.org/zap"
)

// reloadHint tells the operator once per process what a reload costs on
// this machine.
var reloadHint sync.Once

// migrateReqPath is the Linux sysctl (5.14+) that moves the connections
// waiting in a closing SO_REUSEPORT listener's accept queue to another
// listener of the same port instead of resetting them.
const migrateReqPath = "/proc/sys/net/ipv4/tcp_migrate_req"

// hintMigrateReq logs, when the sysctl exists and is off, that each
// `caddy reload` resets the connections clients open at that instant:
// Caddy gives each config its own SO_REUSEPORT listener and closes the
// old one, and the kernel resets what is queued on it. Long-polling
// clients that open a connection per request (the Node socket.io-client)
// then see a transport error and open a new session.
func hintMigrateReq(logger *zap.Logger) {
	v, err := os.ReadFile(migrateReqPath)
	if err != nil || strings.TrimSpace(string(v)) != "0" {
		return
	}
	logger.Info("net.ipv4.tcp_migrate_req is 0: each config reload resets the connections clients open at that instant; "+
		"set it to 1 (sysctl -w net.ipv4.tcp_migrate_req=1) so the kernel hands them to the new config",
		zap.String("sysctl", migrateReqPath))
}
