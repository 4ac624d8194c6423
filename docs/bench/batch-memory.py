import subprocess, os, time, threading, http.client, sys
env=dict(os.environ)
env.update({"UNDERSTUDY_GATEWAY__HTTP_PORT":"0","UNDERSTUDY_GATEWAY__BIND_HOST":"127.0.0.1","UNDERSTUDY_KAFKA__TOPIC":"mem-probe","RUST_LOG":"warn"})
binary=sys.argv[1] if len(sys.argv)>1 else "/work/main/target/debug/understudy"
p=subprocess.Popen([binary,"gateway"],env=env,stdout=subprocess.PIPE,stderr=subprocess.DEVNULL)
url=None
while url is None:
    line=p.stdout.readline().decode()
    if " listening on " in line: url=line.split(" listening on ")[1].strip()
host,port=url.replace("http://","").split(":")
def rss():
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])//1024
body=b"["+b"0,"*(2*1024*1024-1)+b"0]"
body=body[:4*1024*1024-2]+b"]" if len(body)>4*1024*1024 else body
nd=b"0\n"*(2*1024*1024-10)
time.sleep(1)
print("idle rss MiB", rss())
peak=[0]
stop=[False]
def sampler():
    while not stop[0]:
        peak[0]=max(peak[0],rss()); time.sleep(0.01)
t=threading.Thread(target=sampler); t.start()
def send(payload,ctype):
    c=http.client.HTTPConnection(host,int(port),timeout=60)
    c.request("POST","/api/logs/batch",body=payload,headers={"Content-Type":ctype})
    r=c.getresponse(); r.read(); return r.status
statuses=[]
ths=[threading.Thread(target=lambda i=i: statuses.append(send(body if i%2==0 else nd, "application/json" if i%2==0 else "application/x-ndjson"))) for i in range(16)]
started=time.time()
[x.start() for x in ths]; [x.join() for x in ths]
stop[0]=True; t.join()
print("16 concurrent 4 MiB batches: statuses", sorted(set(statuses)), "peak rss MiB", peak[0], "took s", round(time.time()-started,2))
p.kill()
