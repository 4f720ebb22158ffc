package llmtest_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/depai/depai/agent/llm/llmtest"
)

func ExampleStart() {
	srv, err := llmtest.Start(llmtest.Config{Replies: []llmtest.Reply{{Text: "hello"}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, strings.Contains(string(body), `"content":"hello"`))
	fmt.Println(srv.Requests()[0].Messages[0].Content)
	// Output:
	// 200 true
	// hi
}
