package segments

// MarshalText writes an LSN the way PostgreSQL prints it ("16/B374D848"), so catalogs
// and JSON output read like the server's own views.
func (l LSN) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText parses PostgreSQL's "X/Y" form.
func (l *LSN) UnmarshalText(b []byte) error {
	v, err := ParseLSN(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}
