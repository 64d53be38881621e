package driver_test

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/rudp"
)

// Three nodes join one room on a loopback server; each broadcasts a line once its
// links to the other two are up, and each hears the other two.
func ExampleNode_JoinRoom() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := driver.ListenServer(driver.ServerConfig{Listen: "127.0.0.1:0", AltPort: "off", InsecureDev: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	ids := []string{"ann", "ben", "cat"}
	var rooms []*driver.Room
	for _, id := range ids {
		n, err := driver.Listen(ctx, driver.Config{Server: srv.Addr().String(), ID: id, InsecureDev: true, Listen: "127.0.0.1:0"})
		if err != nil {
			fmt.Println(err)
			return
		}
		defer n.Close()
		r, err := n.JoinRoom(ctx, "lobby")
		if err != nil {
			fmt.Println(err)
			return
		}
		rooms = append(rooms, r)
	}
	fmt.Println("members:", rooms[2].Members(), "owner:", rooms[2].Owner())
	for i, r := range rooms {
		for len(r.Linked()) < len(ids)-1 && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		if err := r.Broadcast(0, rudp.ReliableOrdered, []byte("hi from "+ids[i])); err != nil {
			fmt.Println(err)
			return
		}
	}
	for i, r := range rooms {
		var heard []string
		for range len(ids) - 1 {
			m, err := r.Recv(ctx)
			if err != nil {
				fmt.Println(err)
				return
			}
			heard = append(heard, m.From+": "+string(m.Data))
		}
		slices.Sort(heard)
		fmt.Println(ids[i], "heard", heard)
	}
	// Output:
	// members: [ann ben cat] owner: ann
	// ann heard [ben: hi from ben cat: hi from cat]
	// ben heard [ann: hi from ann cat: hi from cat]
	// cat heard [ann: hi from ann ben: hi from ben]
}
