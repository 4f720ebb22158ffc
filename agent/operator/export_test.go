package operator

import "time"

// SetAuthLogWindow shortens the window of failed-authentication logging
// for a test; call it before Serve.
func SetAuthLogWindow(s *Server, d time.Duration) { s.authLog.window = d }
