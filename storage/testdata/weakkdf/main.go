// Command weakkdf is built by TestWeakKDFRefusedOutsideTests with go build, so it is
// not a test binary: it asks for a new store, then a new passphrase, under cheap
// Argon2id parameters, and prints what storage answered to each.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"pfschat/storage"
)

func main() {
	ctx := context.Background()
	cheap := storage.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}
	path := filepath.Join(os.Args[1], "store.db")
	_, err := storage.CreateClientWith(ctx, path, []byte("passphrase"), storage.ClientOptions{KDF: cheap})
	_, statErr := os.Stat(path)
	fmt.Printf("create: weak=%v created=%v\n", errors.Is(err, storage.ErrWeakKDF), statErr == nil)

	c, err := storage.CreateClient(ctx, path, []byte("passphrase"))
	if err != nil {
		fmt.Println("create with the default:", err)
		os.Exit(1)
	}
	defer c.Close()
	err = c.ChangePassphraseWith(ctx, []byte("another"), cheap)
	kdf, kerr := c.KDF(ctx)
	fmt.Printf("change: weak=%v kept=%v\n", errors.Is(err, storage.ErrWeakKDF), kerr == nil && kdf == storage.DefaultKDF)
}
