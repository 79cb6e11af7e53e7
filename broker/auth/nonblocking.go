package auth

// NonBlocking reports true: the ACL file answers from the rules in
// memory, without waiting, so the broker calls it directly on the
// connection's goroutine instead of on a goroutine of its own bounded by
// Server.HookTimeout (see broker.NonBlocking).
func (*ACLFile) NonBlocking() bool { return true }
