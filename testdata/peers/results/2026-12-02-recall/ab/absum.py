import sys,re,statistics as st
cur=None; rows={}
for l in open(sys.argv[1]):
    if l.startswith('=='):
        cur=l.split()[1]; rnd=l.split()[3]; continue
    m=re.match(r'BenchmarkTurn/(\S+)/sessions=(\d+)-2\s+\d+\s+\d+ ns/op.*?([\d.]+) cpu-us/turn\s+([\d.]+) req-B/turn\s+([\d.]+) srv-cpu-us/turn\s+(\d+) turns/s\s+(\d+) B/op\s+(\d+) allocs/op',l)
    if not m: continue
    peer,s,cpu,req,srv,tps,b,al=m.groups()
    rows.setdefault((cur,rnd),{})[(peer,s)]=(float(cpu),float(req),float(srv),float(tps),int(al))
dirs=sorted(set(k[0] for k in rows))
for d in dirs:
    for s in ('1','8'):
        ratio=[];cpu=[];req=[];srv=[];al=[]
        for (dd,r),v in rows.items():
            if dd!=d: continue
            f=v.get(('floor',s)); x=v.get(('depai-inproc',s))
            if not f or not x: continue
            ratio.append(x[3]/f[3]); cpu.append(x[0]); req.append(x[1]); srv.append(x[2]); al.append(x[4])
        print(d.split('/')[-1], 's='+s, 'ratio med %.2f [%s]'%(st.median(ratio),' '.join('%.2f'%r for r in ratio)), 'cpu %.0f srv %.0f req %.0f allocs %d'%(st.median(cpu),st.median(srv),st.median(req),st.median(al)))
