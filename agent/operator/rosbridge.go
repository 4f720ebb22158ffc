package operator

import (
	"net/http"

	"github.com/depai/depai/agent/operator/rosbridge"
)

// serveROSBridge speaks rosbridge v2 on GET /v1/rosbridge (a WebSocket) as
// the operator who opened it. The connection counts as a turn, so Shutdown
// waits for it to end; Shutdown's cancellation of the base context ends it.
func (s *Server) serveROSBridge(w http.ResponseWriter, r *http.Request) {
	op := r.Context().Value(opKey{}).(*credential)
	if !s.beginTurn() {
		writeError(w, http.StatusServiceUnavailable, CodeShuttingDown, "the server is shutting down")
		return
	}
	defer s.turns.Done()
	agents := make([]rosbridge.Agent, len(s.agents))
	for i, a := range s.agents {
		agents[i] = a
	}
	err := rosbridge.Serve(r.Context(), w, r, rosbridge.Config{Agents: agents, Operator: rosbridge.Operator{Name: op.name, Role: op.role}, Logger: s.log})
	if err != nil {
		s.log.Debug("operator: rosbridge connection ended", "operator", op.name, "err", err)
	}
}
