package host

// OrDefault returns l with every zero field taken from DefaultLimits.
func (l Limits) OrDefault() Limits {
	if l.MemoryBytes == 0 {
		l.MemoryBytes = DefaultLimits.MemoryBytes
	}
	if l.CallTimeout <= 0 {
		l.CallTimeout = DefaultLimits.CallTimeout
	}
	if l.Concurrency <= 0 {
		l.Concurrency = DefaultLimits.Concurrency
	}
	if l.OutputBytes <= 0 {
		l.OutputBytes = DefaultLimits.OutputBytes
	}
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = DefaultLimits.MaxMessageBytes
	}
	return l
}
