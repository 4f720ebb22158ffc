package main

import "peers/depaipeer/peer"

func main() { peer.Main("depai-inproc", peer.NewInProc) }
