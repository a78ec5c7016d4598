package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"userve.dev/userve/bench/internal/pgferret"
	"userve.dev/userve/bench/internal/procmon"
	"userve.dev/userve/bench/internal/seed"
)

func main() {
	ctx := context.Background()
	st, err := pgferret.Start(ctx, "/work/main/bin/ferretdb", os.TempDir())
	if err != nil {
		panic(err)
	}
	defer st.Stop()
	c, _ := mongo.Connect(options.Client().ApplyURI(st.URI))
	db := c.Database("exp")
	n := 100000
	g := seed.New(seed.Config{Profiles: n, Groups: 50, LoginUsers: 200, Seed: 1, PasswordHash: "x"})
	t := time.Now()
	if err := g.Insert(ctx, db, 4, nil); err != nil {
		panic(err)
	}
	fmt.Println("insert", time.Since(t))
	col := db.Collection("profiles")
	fp := st.FerretPid()
	measure := func(name string, f func()) {
		u0, _ := procmon.Read(fp)
		t := time.Now()
		f()
		u1, _ := procmon.Read(fp)
		fmt.Printf("%-30s wall %8v ferret cpu %v\n", name, time.Since(t).Round(time.Millisecond), u1.CPU-u0.CPU)
	}
	measure("count all", func() { col.CountDocuments(ctx, bson.D{}) })
	measure("count gender=1 flat", func() { col.CountDocuments(ctx, bson.D{{Key: "gender", Value: int64(1)}}) })
	measure("findone _id x20", func() {
		for j := 0; j < 20; j++ {
			col.FindOne(ctx, bson.D{{Key: "_id", Value: int64(4242 + j)}}).Raw()
		}
	})
	psql := func(q string) string {
		cmd := exec.Command("psql", strings.Replace(st.PostgresURL, "postgres://", "postgresql://", 1), "-At", "-c", q)
		out, err := cmd.CombinedOutput()
		if err != nil {
			fmt.Println("psql", err, string(out))
		}
		return strings.TrimSpace(string(out))
	}
	table := psql("SELECT table_name FROM information_schema.tables WHERE table_schema='exp' AND table_name LIKE 'profiles%'")
	fmt.Println("table", table)
	fmt.Println(psql(`EXPLAIN ANALYZE SELECT _jsonb FROM exp."` + table + `" WHERE _jsonb->'_id' @> '4242'`))
	t = time.Now()
	fmt.Println(psql(`CREATE INDEX bench_id_gin ON exp."`+table+`" USING gin ((_jsonb->'_id') jsonb_path_ops)`), time.Since(t))
	fmt.Println(psql(`EXPLAIN ANALYZE SELECT _jsonb FROM exp."` + table + `" WHERE _jsonb->'_id' @> '4242'`))
	measure("findone _id x20 (gin)", func() {
		for j := 0; j < 20; j++ {
			col.FindOne(ctx, bson.D{{Key: "_id", Value: int64(4242 + j)}}).Raw()
		}
	})
}
