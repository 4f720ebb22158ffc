package mesh

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// Subjects and names on NATS. Every subject an agent publishes on carries
// its name in a fixed position, so that per-user permissions can confine an
// agent to its own subjects.
const (
	subjectPrefix  = "depai."
	registryBucket = "depai_registry"
	tasksStream    = "DEPAI_TASKS"
	memStream      = "DEPAI_MEM"
	tasksSubjects  = "depai.tasks.>"
	memSubjects    = "depai.mem.>"
)

// InboxSubject is where an agent receives requests: signed envelopes that
// any fleet member may send.
func InboxSubject(agent string) string { return "depai.agent." + agent + ".inbox" }

// taskSubject is the subject of one task message: the task, then the
// sender, then what happened. Agents may publish only with their own name.
func taskSubject(taskID, sender string, kind TaskEvent) string {
	return "depai.tasks." + taskID + "." + sender + "." + string(kind)
}

// memSubject maps a memory namespace to a subject: one token per segment,
// each base64url-encoded because segments may contain '.'. A namespace and
// everything below it is then memSubject(ns) and memSubject(ns)+".>".
func memSubject(namespace string) string {
	var b strings.Builder
	b.WriteString("depai.mem")
	for seg := range strings.SplitSeq(namespace, "/") {
		b.WriteByte('.')
		b.WriteString(base64.RawURLEncoding.EncodeToString([]byte(seg)))
	}
	return b.String()
}

// inboxPrefix is the reply-inbox prefix of an agent's connection: each
// agent subscribes only below its own, so it cannot read others' replies.
func inboxPrefix(agent string) string { return "_INBOX_" + agent }

// CheckName reports whether name can name an agent or node: it becomes a
// subject token, a KV key and a file name. Letters, digits, '-' and '_',
// not starting with '_' (reserved), at most 64 bytes.
func CheckName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("mesh: name %q: want 1 to 64 characters", name)
	}
	if name[0] == '_' {
		return fmt.Errorf("mesh: name %q: a leading '_' is reserved", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("mesh: name %q has character %q: want letters, digits, '-' and '_'", name, c)
		}
	}
	return nil
}
