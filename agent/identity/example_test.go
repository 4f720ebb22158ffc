package identity_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/depai/depai/agent/identity"
)

func ExampleLoadOrCreate() {
	dir, _ := os.MkdirTemp("", "identity-example")
	defer os.RemoveAll(dir)
	path, _ := identity.KeyPath(dir, "robot-1")
	id, created, err := identity.LoadOrCreate(identity.Config{Path: path})
	if err != nil {
		fmt.Println(err)
		return
	}
	sig := id.Sign([]byte("hello"))
	fmt.Println(created, strings.HasPrefix(id.DID(), "did:key:z6Mk"), strings.HasPrefix(id.NKey(), "U"), filepath.Base(path))
	fmt.Println(identity.Verify(id.DID(), []byte("hello"), sig))
	// Output:
	// true true true robot-1.key
	// <nil>
}
