package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/depai/depai/agent/policy"
	"github.com/depai/depai/memory"
)

func newAuditCmd() *cobra.Command {
	var data string
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Check and read the audit log of a data directory",
		Long: `The audit log records every decision of the policy engine and every side
effect, hash-chained so that an edit or a deletion is detectable. Stop the depai
run that uses the data directory first.`,
	}
	cmd.PersistentFlags().StringVar(&data, "data", "", "data directory; the store is DIR/memory")
	storeDir := func() string { return filepath.Join(dataDir(data, ""), "memory") }
	var asJSON bool
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Verify the audit chain; exits 1 when a record was changed, removed or forged",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withMemory(cmd, storeDir(), false, func(ctx context.Context, db *memory.DB) error {
				rep, err := policy.Verify(ctx, db)
				if err != nil {
					return err
				}
				if asJSON {
					b, _ := json.MarshalIndent(rep, "", "  ")
					fmt.Fprintln(cmd.OutOrStdout(), string(b))
				} else {
					fmt.Fprintln(cmd.OutOrStdout(), rep.String())
				}
				if !rep.OK() {
					return errors.New("the audit log does not verify")
				}
				return nil
			})
		},
	}
	verify.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.AddCommand(verify)
	return cmd
}
