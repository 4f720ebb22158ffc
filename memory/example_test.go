package memory_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/depai/depai/memory"
)

func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "memory-example-")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	db, err := memory.Open(ctx, memory.Config{Dir: dir, Profile: memory.ProfileLowMem})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	// Put returns once the records are durable.
	if _, err := db.Put(ctx,
		memory.Record{Namespace: "agent/robot-1", Kind: memory.KindObservation, Text: "pallet at dock 4"},
		memory.Record{Namespace: "agent/robot-1", Kind: memory.KindReading, Text: "battery 81%"},
	); err != nil {
		log.Fatal(err)
	}
	for rec, err := range db.Query(ctx, memory.Query{Namespace: "agent", Limit: 10}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(rec.Seq, rec.Kind, rec.Text)
	}
	// Output:
	// 2 reading battery 81%
	// 1 observation pallet at dock 4
}

func ExampleScoped() {
	dir, _ := os.MkdirTemp("", "memory-example-")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	db, err := memory.Open(ctx, memory.Config{Dir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	robot, err := memory.Scoped(db, memory.Grants{
		Principal: "robot-1",
		Read:      []string{"agent/robot-1", "fleet"},
		Write:     []string{"agent/robot-1"},
	})
	if err != nil {
		log.Fatal(err)
	}
	_, err = robot.Put(ctx, memory.Record{Namespace: "agent/robot-10", Kind: memory.KindObservation, Text: "not mine"})
	fmt.Println(err)
	// Output:
	// memory: write "agent/robot-10" by robot-1: memory: access denied (not granted; read grants ["agent/robot-1" "fleet"], write grants ["agent/robot-1"])
}

func ExampleDB_PutFact() {
	dir, _ := os.MkdirTemp("", "memory-example-")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	db, err := memory.Open(ctx, memory.Config{Dir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	v1, _ := db.PutFact(ctx, memory.Record{Namespace: "fleet/site-a", Key: "dock-4", Text: "free"}, 0)
	_, _ = db.PutFact(ctx, memory.Record{Namespace: "fleet/site-a", Key: "dock-4", Text: "busy"}, v1.Seq)
	// A writer that read v1 and did not see the update loses the race.
	_, err = db.PutFact(ctx, memory.Record{Namespace: "fleet/site-a", Key: "dock-4", Text: "free"}, v1.Seq)
	fmt.Println(err)
	hist, _ := db.History(ctx, "fleet/site-a", "dock-4")
	for _, v := range hist {
		fmt.Println(v.Text, "superseded:", !v.ValidTo.IsZero())
	}
	// Output:
	// memory: put: memory: conflicting update: fact fleet/site-a key "dock-4": expected current version seq 1, it is 2 (re-read and retry)
	// free superseded: true
	// busy superseded: false
}
