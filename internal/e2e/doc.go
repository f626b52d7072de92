// Package e2e holds walkeeper's end-to-end tests: the real binary against real
// PostgreSQL 15 clusters, driven the way a DBA drives it.
package e2e
