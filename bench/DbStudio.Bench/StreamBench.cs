// Live row stream (issue 5): N concurrent SSE subscribers on one table while REST inserts run at a fixed rate.
// Prints commit→client delivery latency (p50/p99), events lost, and the server's memory per idle subscriber, each next
// to a baseline from the same run: a raw LISTEN connection receiving the same commits' pg_notify (the floor for
// latency), and a hand-written SSE endpoint that only holds its connections open (the floor for memory).
// The server runs as a child process (`stream-serve`) so its memory is its own. Each phase first runs the same load for
// BENCH_WARMUP seconds (5; 0: none) — JIT, connection pools, PostgreSQL's caches — and measures the seconds after it:
// events committed during the warm-up count for lost/delivered, and their latency is printed on a line of its own.
using System.Buffers;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using DbStudio.Core.Access;
using DbStudio.Core.Console;
using Npgsql;

namespace DbStudio.Bench;

public static class StreamBench
{
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nuint pad);

    // ---- the server (child process) --------------------------------------------------------------------------

    public static async Task ServeAsync()
    {
        await using var host = await BenchHost.StartAsync(["http://127.0.0.1:0"]);
        // Baseline endpoint: an SSE response that says hello and then only stays open.
        host.App.MapGet("/bench/idle", async (HttpContext ctx) =>
        {
            ctx.Response.ContentType = "text/event-stream";
            await ctx.Response.WriteAsync(": connected\n\n", ctx.RequestAborted);
            await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
            try { await Task.Delay(Timeout.Infinite, ctx.RequestAborted); } catch (OperationCanceledException) { }
        });
        // Baseline fan-out: a minimal hand-written SSE broadcast (bounded channel per client, write + flush), no database.
        var clients = new System.Collections.Concurrent.ConcurrentDictionary<System.Threading.Channels.Channel<byte[]>, bool>();
        long broadcastId = 0;
        host.App.MapGet("/bench/broadcast", async (HttpContext ctx) =>
        {
            var ch = System.Threading.Channels.Channel.CreateBounded<byte[]>(2048);
            clients[ch] = true;
            try
            {
                ctx.Response.ContentType = "text/event-stream";
                await ctx.Response.WriteAsync(": connected\n\n", ctx.RequestAborted);
                await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
                while (await ch.Reader.WaitToReadAsync(ctx.RequestAborted))
                {
                    while (ch.Reader.TryRead(out var frame)) ctx.Response.BodyWriter.Write(frame);
                    await ctx.Response.BodyWriter.FlushAsync(ctx.RequestAborted);
                }
            }
            catch (OperationCanceledException) { }
            finally { clients.TryRemove(ch, out _); }
        });
        host.App.MapPost("/bench/broadcast", () =>
        {
            var id = Interlocked.Increment(ref broadcastId);
            var frame = Encoding.UTF8.GetBytes($"id: {id}\nevent: insert\ndata: " +
                $"{{\"type\":\"INSERT\",\"table\":\"events\",\"schema\":\"bench\",\"record\":{{\"id\":{id},\"payload\":\"event\",\"user_id\":null}}," +
                $"\"old_record\":null,\"commit_timestamp\":\"{DateTime.UtcNow:yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'}\"}}\n\n");
            foreach (var ch in clients.Keys) ch.Writer.TryWrite(frame);
            return Results.Ok();
        });
        // The server's own stage histograms (commit → read from the log → visibility decided → written to the sockets).
        string[] stages = ["dbstudio.stream.read_delay", "dbstudio.stream.dispatch_delay", "dbstudio.stream.delivery_delay"];
        var delays = stages.ToDictionary(n => n, _ => new List<double>());
        var meters = new System.Diagnostics.Metrics.MeterListener();
        meters.InstrumentPublished = (i, l) => { if (i.Meter.Name == DbStudio.Core.Streams.ChangeHub.MeterName && delays.ContainsKey(i.Name)) l.EnableMeasurementEvents(i); };
        meters.SetMeasurementEventCallback<double>((i, v, _, _) => { lock (delays) delays[i.Name].Add(v); });
        meters.Start();
        host.App.MapGet("/bench/dispatch", () =>
        {
            lock (delays)
            {
                // BENCH_PGSS=file (with BENCH_PG_OPTS loading pg_stat_statements): after each phase, where PostgreSQL's
                // time went — the 25 dearest statements, then the counters start again.
                if (Environment.GetEnvironmentVariable("BENCH_PGSS") is { Length: > 0 } pgssFile)
                {
                    using var su = new Npgsql.NpgsqlConnection(host.Cluster.SuperuserConnectionString("dbstudio"));
                    su.Open();
                    using (var ext = new Npgsql.NpgsqlCommand("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", su)) ext.ExecuteNonQuery();
                    using var q = new Npgsql.NpgsqlCommand("SELECT round(total_exec_time::numeric,1), round(total_plan_time::numeric,1), calls, plans, round((total_exec_time/greatest(calls,1))::numeric,3), left(regexp_replace(query, '[[:space:]]+', ' ', 'g'), 160) FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC LIMIT 25", su);
                    using var r = q.ExecuteReader();
                    var lines = new List<string> { "=== exec ms, plan ms, calls, plans, exec ms per call, statement" };
                    while (r.Read()) lines.Add($"{r.GetValue(0)}\t{r.GetValue(1)}\t{r.GetValue(2)}\t{r.GetValue(3)}\t{r.GetValue(4)}\t{r.GetValue(5)}");
                    System.IO.File.AppendAllLines(pgssFile, lines);
                    r.Close();
                    using var reset = new Npgsql.NpgsqlCommand("SELECT pg_stat_statements_reset()", su); reset.ExecuteNonQuery();
                }
                var result = new Dictionary<string, object?>
                {
                    ["gcPauseMs"] = GC.GetTotalPauseDuration().TotalMilliseconds, ["gen2"] = GC.CollectionCount(2), ["gen0"] = GC.CollectionCount(0),
                };
                foreach (var (name, list) in delays)
                {
                    list.Sort();
                    result[name] = list.Count == 0 ? null : new[] { Stats.Percentile(list, 50), Stats.Percentile(list, 99) };
                    list.Clear();
                }
                return Results.Json(result);
            }
        });
        host.App.MapGet("/bench/memory", () =>
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            // Aggressive: compacts and gives free memory back to the OS, so RSS counts what is held, not what the GC keeps
            // spare for allocations to come (which varied by ±10 KB per subscriber from run to run).
            GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            // The same for native memory: glibc keeps freed blocks in its arenas (connections closed by the phase before).
            if (OperatingSystem.IsLinux()) try { _ = MallocTrim(0); } catch (EntryPointNotFoundException) { } catch (DllNotFoundException) { }
            using var self = Process.GetCurrentProcess();
            return Results.Json(new { heap = GC.GetTotalMemory(false), rss = self.WorkingSet64, threads = self.Threads.Count,
                committed = GC.GetGCMemoryInfo().TotalCommittedBytes });
        });
        await host.App.StartAsync();
        var baseUrl = host.App.Urls.First();
        var services = host.App.Services;
        var userId = await host.CreateUserAsync();
        var project = await host.CreateProjectAsync(userId, baseUrl);
        var setup = await services.GetRequiredService<SqlConsole>().RunAsync(project.Id,
            "create table events (id bigserial primary key, payload text not null, user_id uuid)");
        if (setup.FirstOrDefault(r => r.Error is not null) is { } failed) throw new InvalidOperationException(failed.Error!.Message);
        await services.GetRequiredService<AccessPolicies>().PutAsync(project.Id, "events", AccessSettings.Defaults("user_id") with { anon_select = true });
        // The signed-in run: a table with own-row policies (the defaults) and BENCH_USERS end users, one stream each.
        var users = int.TryParse(Environment.GetEnvironmentVariable("BENCH_USERS"), out var n) ? n : 0;
        if (users > 0)
        {
            var made = await services.GetRequiredService<SqlConsole>().RunAsync(project.Id,
                "create table owned (id bigserial primary key, payload text not null, user_id uuid)");
            if (made.FirstOrDefault(r => r.Error is not null) is { } err) throw new InvalidOperationException(err.Error!.Message);
            await services.GetRequiredService<AccessPolicies>().PutAsync(project.Id, "owned", AccessSettings.Defaults("user_id"));
            var auth = services.GetRequiredService<DbStudio.Core.Auth.EndUserAuth>();
            for (var i = 0; i < users; i++)
            {
                var session = await auth.SignupAsync(project.Id, $"bench{i}@example.com", "bench user password");
                Console.WriteLine($"USER {session.user.id} {session.access_token}");
            }
        }
        Console.WriteLine($"READY {baseUrl} {project.Id} {project.AnonKey} {project.ApiKey} {host.PlatformConnectionString}");
        await host.App.WaitForShutdownAsync();
    }

    // ---- the load (parent process) ---------------------------------------------------------------------------

    public static async Task RunAsync(int subscribers, int ratePerSecond, int seconds, bool signedIn = false)
    {
        var start = new ProcessStartInfo(Environment.ProcessPath!, "stream-serve")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        if (signedIn) start.Environment["BENCH_USERS"] = subscribers.ToString();
        using var server = Process.Start(start)!;
        _ = server.StandardError.ReadToEndAsync();
        string? ready;
        var users = new List<(string Id, string Token)>();
        while ((ready = await server.StandardOutput.ReadLineAsync()) is not null && !ready.StartsWith("READY ", StringComparison.Ordinal))
            if (ready.StartsWith("USER ", StringComparison.Ordinal) && ready.Split(' ') is [_, var id, var token]) users.Add((id, token));
        if (ready is null) throw new InvalidOperationException("the server did not start");
        var parts = ready.Split(' ', 6);
        var (baseUrl, projectId, anonKey, apiKey, platformCs) = (parts[1], parts[2], parts[3], parts[4], parts[5]);
        try
        {
            if (signedIn) await RunSignedInAsync(new Uri(baseUrl), projectId, anonKey, apiKey, users, ratePerSecond, seconds, server);
            else await RunLoadAsync(new Uri(baseUrl), projectId, anonKey, apiKey, platformCs, subscribers, ratePerSecond, seconds, server);
        }
        finally
        {
            // SIGTERM, so the server stops its PostgreSQL cluster on the way out.
            using (var term = Process.Start("kill", ["-TERM", server.Id.ToString()])) await term.WaitForExitAsync();
            await server.WaitForExitAsync();
        }
    }

    private static async Task<(long Heap, long Rss)> MemoryAsync(HttpClient http)
    {
        var json = await http.GetStringAsync("/bench/memory");
        Console.Error.WriteLine($"memory: {json}");
        var doc = System.Text.Json.JsonDocument.Parse(json);
        return (doc.RootElement.GetProperty("heap").GetInt64(), doc.RootElement.GetProperty("rss").GetInt64());
    }

    private static async Task RunLoadAsync(Uri baseUrl, string projectId, string anonKey, string apiKey, string platformCs,
        int subscribers, int rate, int seconds, Process server)
    {
        var handler = new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue, PooledConnectionIdleTimeout = TimeSpan.FromMinutes(10) };
        using var http = new HttpClient(handler) { BaseAddress = baseUrl, Timeout = Timeout.InfiniteTimeSpan };
        var stop = new CancellationTokenSource();

        // Memory: the marginal cost of a subscriber — N connections open (pools and buffers warmed), then N more, three
        // times; what the three steps add, divided by 3N (one step alone varied by ±8 KB RSS per subscriber: the GC and
        // the allocator take memory from the system in blocks of megabytes; each step is printed).
        async Task<(double Rss, double Heap)> PerSubscriberAsync(string path)
        {
            var open = await OpenAsync(http, path, subscribers, stop.Token);
            await Task.Delay(2000);
            var before = await MemoryAsync(http);
            var first = before;
            var steps = new List<(double Rss, double Heap)>();
            for (var step = 0; step < 3; step++)
            {
                open.AddRange(await OpenAsync(http, path, subscribers, stop.Token));
                await Task.Delay(2000);
                var after = await MemoryAsync(http);
                steps.Add(((after.Rss - before.Rss) / (double)subscribers / 1024, (after.Heap - before.Heap) / (double)subscribers / 1024));
                before = after;
            }
            foreach (var c in open) c.Dispose();
            await Task.Delay(2000);
            Console.WriteLine($"  memory per subscriber on {path.Split('?')[0]}, each step of {subscribers} (KB RSS / heap): " +
                                    string.Join(", ", steps.Select(s => $"{s.Rss:F1} / {s.Heap:F1}")));
            return ((before.Rss - first.Rss) / (3.0 * subscribers) / 1024, (before.Heap - first.Heap) / (3.0 * subscribers) / 1024);
        }
        // BENCH_QUICK=1: latency only (no memory phases), for trying changes out.
        var quick = Environment.GetEnvironmentVariable("BENCH_QUICK") == "1";
        // The stream first: memory freed by the phase before is reused by the next (its RSS can then grow by less than its
        // heap), and that advantage goes to the baseline, not to what is measured.
        var (perSubscriber, perSubscriberHeap) = quick ? (1.0, 1.0) : await PerSubscriberAsync($"/db/{projectId}/rest/events/stream?apikey={anonKey}");
        var (baselineRss, baselineHeap) = quick ? (1.0, 1.0) : await PerSubscriberAsync("/bench/idle");

        // Delivery: first the hand-written broadcast (no database), then DbStudio with REST inserts, same load.
        using var writer = new HttpClient(new SocketsHttpHandler()) { BaseAddress = baseUrl };
        writer.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        var baseline = await PhaseAsync(http, server, "/bench/broadcast", subscribers, rate, seconds, null,
            () => writer.PostAsync("/bench/broadcast", null));
        var ours = await PhaseAsync(http, server, $"/db/{projectId}/rest/events/stream?apikey={anonKey}", subscribers, rate, seconds, platformCs,
            () => writer.PostAsync($"/db/{projectId}/rest/events", new StringContent("{\"payload\":\"event\"}", Encoding.UTF8, "application/json")));

        Console.WriteLine($"\n== Live row stream: {subscribers} subscribers on one table, {rate} inserts/s for {seconds} s, loopback, {Environment.ProcessorCount} cores ==");
        foreach (var r in new[] { baseline with { Name = "hand-written SSE broadcast, no database" }, ours with { Name = "DbStudio stream, REST inserts, ANON key (policy-checked)" } })
        {
            Console.WriteLine($"  {r.Name}");
            Console.WriteLine($"    writes acknowledged          {r.Acknowledged} of {rate * (seconds + (int)r.WarmupSeconds)} in {r.LoadSeconds:F1} s (warm-up included)");
            // (Row ids are not commit order when 16 writes are in flight: out-of-order ids are counted, not lost events.)
            Console.WriteLine($"    events delivered / lost      {r.Delivered:N0} / {r.Expected - r.Delivered:N0} (row ids out of order: {r.Gaps})");
            Console.WriteLine($"    commit→client latency        p50 {r.P50:F1} ms, p99 {r.P99:F1} ms, max {r.Max:F1} ms");
            if (r.WarmupSeconds > 0)
                Console.WriteLine($"      (warm-up, first {r.WarmupSeconds:F0} s)    p50 {r.WarmupP50:F1} ms, p99 {r.WarmupP99:F1} ms (not counted above)");
            Console.WriteLine($"    CPU                          server {r.ServerCpu:F0} %, load generator {r.ClientCpu:F0} % (of one core)");
            if (r.NotifyP50 is not null)
            {
                foreach (var (stage, (p50, p99)) in Stages)
                    Console.WriteLine($"    of which commit→{stage,-18} p50 {p50:F1} ms, p99 {p99:F1} ms (server side, dbstudio.stream.*_delay)");
                Console.WriteLine($"    PostgreSQL NOTIFY→LISTEN     p50 {r.NotifyP50:F1} ms, p99 {r.NotifyP99:F1} ms (the floor under the same load)");
            }
        }
        Console.WriteLine($"  DbStudio lost {ours.Expected - ours.Delivered:N0} (goal 0); p99 {ours.P99:F1} ms (goal < 50 ms); " +
                          $"p99 ratio to the hand-written broadcast {ours.P99 / baseline.P99:F2}×");
        if (quick) Console.WriteLine("  memory per idle subscriber     not measured (BENCH_QUICK=1)");
        else Console.WriteLine($"  memory per idle subscriber     DbStudio {perSubscriber:F1} KB RSS / {perSubscriberHeap:F1} KB managed heap (goal < 20 KB); " +
                          $"hand-written idle SSE {baselineRss:F1} KB RSS / {baselineHeap:F1} KB heap; ratio {perSubscriber / baselineRss:F2}× RSS");
    }

    /// <summary>
    /// N distinct signed-in subscribers on an own-rows table (each sees only its rows: PostgreSQL decides per identity),
    /// inserts spread evenly over them; next to the anon run's figures printed by the other mode.
    /// </summary>
    private static async Task RunSignedInAsync(Uri baseUrl, string projectId, string anonKey, string apiKey,
        List<(string Id, string Token)> users, int rate, int seconds, Process server)
    {
        var handler = new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue, PooledConnectionIdleTimeout = TimeSpan.FromMinutes(10) };
        using var http = new HttpClient(handler) { BaseAddress = baseUrl, Timeout = Timeout.InfiniteTimeSpan };
        using var writer = new HttpClient(new SocketsHttpHandler()) { BaseAddress = baseUrl };
        writer.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        var next = -1;
        var r = await PhaseAsync(http, server, i => $"/db/{projectId}/rest/owned/stream?apikey={anonKey}&access_token={users[i].Token}",
            users.Count, rate, seconds, null, () =>
            {
                var who = users[(int)((uint)Interlocked.Increment(ref next) % (uint)users.Count)].Id;
                return writer.PostAsync($"/db/{projectId}/rest/owned",
                    new StringContent($"{{\"payload\":\"event\",\"user_id\":\"{who}\"}}", Encoding.UTF8, "application/json"));
            }, expectedPerSubscriber: acknowledged => (double)acknowledged / users.Count);
        Console.WriteLine($"\n== Live row stream: {users.Count} distinct signed-in subscribers, own rows, {rate} inserts/s for {seconds} s, loopback, {Environment.ProcessorCount} cores ==");
        Console.WriteLine($"    writes acknowledged          {r.Acknowledged} of {rate * (seconds + (int)r.WarmupSeconds)} in {r.LoadSeconds:F1} s (warm-up included)");
        Console.WriteLine($"    events delivered / lost      {r.Delivered:N0} / {r.Expected - r.Delivered:N0}");
        Console.WriteLine($"    commit→client latency        p50 {r.P50:F1} ms, p99 {r.P99:F1} ms, max {r.Max:F1} ms");
        if (r.WarmupSeconds > 0)
            Console.WriteLine($"      (warm-up, first {r.WarmupSeconds:F0} s)    p50 {r.WarmupP50:F1} ms, p99 {r.WarmupP99:F1} ms (not counted above)");
        Console.WriteLine($"    CPU                          server {r.ServerCpu:F0} %, load generator {r.ClientCpu:F0} % (of one core)");
        foreach (var (stage, (p50, p99)) in Stages)
            Console.WriteLine($"    commit→{stage,-18}         p50 {p50:F1} ms, p99 {p99:F1} ms (server side)");
    }

    /// <summary>The server's stage delays of the last phase: read from the log, visibility decided, written to the sockets.</summary>
    private static List<(string Stage, (double P50, double P99) Delay)> Stages = [];

    private sealed record PhaseResult(string Name, int Acknowledged, double LoadSeconds, long Delivered, long Expected, int Gaps,
        double P50, double P99, double Max, double ServerCpu, double ClientCpu, double? NotifyP50, double? NotifyP99,
        double WarmupSeconds = 0, double WarmupP50 = double.NaN, double WarmupP99 = double.NaN);

    /// <summary>Seconds of the same load before each phase's measured window (BENCH_WARMUP, default 5).</summary>
    private static int WarmupSeconds => int.TryParse(Environment.GetEnvironmentVariable("BENCH_WARMUP"), out var w) && w >= 0 ? w : 5;

    private static Task<PhaseResult> PhaseAsync(HttpClient http, Process server, string path, int subscribers, int rate, int seconds,
        string? platformCs, Func<Task<HttpResponseMessage>> fire) =>
        PhaseAsync(http, server, _ => path, subscribers, rate, seconds, platformCs, fire, null);

    private static async Task<PhaseResult> PhaseAsync(HttpClient http, Process server, Func<int, string> pathOf, int subscribers, int rate,
        int seconds, string? platformCs, Func<Task<HttpResponseMessage>> fire, Func<int, double>? expectedPerSubscriber)
    {
        var path = pathOf(0);
        var warmup = WarmupSeconds;
        Volatile.Write(ref Receiver.MeasureFrom, long.MaxValue); // everything is warm-up until the measured window starts
        var stop = new CancellationTokenSource();
        var streams = new List<HttpResponseMessage>();
        if (expectedPerSubscriber is null) streams = await OpenAsync(http, path, subscribers, stop.Token);
        else for (var i = 0; i < subscribers; i++) streams.AddRange(await OpenAsync(http, pathOf(i), 1, stop.Token));
        // Receivers: each connection checks its ids are consecutive and records commit→client latency.
        var receivers = streams.Select(s => new Receiver(s)).ToList();
        var receiving = receivers.Select(r => Task.Run(() => r.RunAsync(stop.Token))).ToList();
        await Task.Delay(1000);

        // PostgreSQL's own NOTIFY → LISTEN latency under the same load, at the same rate.
        var notifyLatencies = new List<double>();
        NpgsqlConnection? listen = null;
        Task listening = Task.CompletedTask, notifying = Task.CompletedTask;
        if (platformCs is not null)
        {
            listen = new NpgsqlConnection(platformCs);
            await listen.OpenAsync();
            listen.Notification += (_, e) =>
            {
                var sent = double.Parse(e.Payload, System.Globalization.CultureInfo.InvariantCulture);
                if (sent * TimeSpan.TicksPerSecond + DateTime.UnixEpoch.Ticks < Volatile.Read(ref Receiver.MeasureFrom)) return; // warm-up
                lock (notifyLatencies) notifyLatencies.Add(((DateTimeOffset.UtcNow - DateTimeOffset.UnixEpoch).TotalSeconds - sent) * 1000);
            };
            await using (var cmd = new NpgsqlCommand("LISTEN dbstudio_bench", listen)) await cmd.ExecuteNonQueryAsync();
            listening = Task.Run(async () => { while (!stop.IsCancellationRequested) await listen.WaitAsync(stop.Token); });
            notifying = Task.Run(async () =>
            {
                await using var conn = new NpgsqlConnection(platformCs);
                await conn.OpenAsync();
                await using var cmd = new NpgsqlCommand("SELECT pg_notify('dbstudio_bench', extract(epoch from clock_timestamp())::text)", conn);
                var started = Stopwatch.StartNew();
                for (var i = 0; i < rate * (warmup + seconds); i++)
                {
                    var due = TimeSpan.FromSeconds((double)i / rate);
                    if (due > started.Elapsed) await Task.Delay(due - started.Elapsed);
                    await cmd.ExecuteNonQueryAsync();
                }
            });
        }

        System.Text.Json.JsonElement gcBefore = default;
        var clientPause0 = TimeSpan.Zero;
        var clientGcs0 = (0, 0, 0);
        var serverCpu0 = TimeSpan.Zero;
        var clientCpu0 = TimeSpan.Zero;
        var measuredFrom = TimeSpan.Zero;
        async Task StartMeasuringAsync(TimeSpan at)
        {
            // The server's stage histograms start again here (the call returns and clears what the warm-up left).
            gcBefore = System.Text.Json.JsonDocument.Parse(await http.GetStringAsync("/bench/dispatch")).RootElement.Clone();
            clientPause0 = GC.GetTotalPauseDuration();
            clientGcs0 = (GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2));
            server.Refresh();
            serverCpu0 = server.TotalProcessorTime;
            clientCpu0 = Process.GetCurrentProcess().TotalProcessorTime;
            measuredFrom = at;
            Volatile.Write(ref Receiver.MeasureFrom, DateTime.UtcNow.Ticks);
        }
        // Load: `rate` writes a second, paced, a few in flight at once; the first `warmup` seconds are not measured.
        var total = rate * (warmup + seconds);
        var acknowledged = 0;
        var gate = new SemaphoreSlim(16);
        var clock = Stopwatch.StartNew();
        if (warmup == 0) await StartMeasuringAsync(TimeSpan.Zero);
        var inFlight = new List<Task>();
        for (var i = 0; i < total; i++)
        {
            var due = TimeSpan.FromSeconds((double)i / rate);
            if (due > clock.Elapsed) await Task.Delay(due - clock.Elapsed);
            if (i == rate * warmup && warmup > 0) await StartMeasuringAsync(clock.Elapsed);
            await gate.WaitAsync();
            inFlight.Add(Task.Run(async () =>
            {
                try
                {
                    using var res = await fire();
                    if (res.IsSuccessStatusCode) Interlocked.Increment(ref acknowledged);
                }
                finally { gate.Release(); }
            }));
        }
        await Task.WhenAll(inFlight);
        await notifying;
        var loadSeconds = clock.Elapsed.TotalSeconds;
        var measuredSeconds = loadSeconds - measuredFrom.TotalSeconds;
        server.Refresh();
        var serverCpu = (server.TotalProcessorTime - serverCpu0).TotalSeconds / measuredSeconds * 100;
        var clientCpu = (Process.GetCurrentProcess().TotalProcessorTime - clientCpu0).TotalSeconds / measuredSeconds * 100;
        // Let the last events arrive, then stop.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        var perSubscriber = expectedPerSubscriber?.Invoke(acknowledged) ?? acknowledged;
        while (receivers.Sum(r => (long)r.Received) < (long)Math.Round(perSubscriber * subscribers) && DateTime.UtcNow < deadline) await Task.Delay(100);
        await stop.CancelAsync();
        try { await Task.WhenAll(receiving); } catch { /* cancelled */ }
        try { await listening; } catch { /* cancelled */ }
        if (listen is not null) await listen.DisposeAsync();
        foreach (var s in streams) s.Dispose();

        Console.Error.WriteLine($"client gc during {path}: pause {(GC.GetTotalPauseDuration() - clientPause0).TotalMilliseconds:F0} ms, gen0 {GC.CollectionCount(0) - clientGcs0.Item1}, gen1 {GC.CollectionCount(1) - clientGcs0.Item2}, gen2 {GC.CollectionCount(2) - clientGcs0.Item3}");
        var latencies = receivers.SelectMany(r => r.Latencies).ToList();
        latencies.Sort();
        var warm = receivers.SelectMany(r => r.Warmup).ToList();
        warm.Sort();
        notifyLatencies.Sort();
        var dispatch = System.Text.Json.JsonDocument.Parse(await http.GetStringAsync("/bench/dispatch")).RootElement;
        Console.Error.WriteLine($"gc during {path}: pause {dispatch.GetProperty("gcPauseMs").GetDouble() - gcBefore.GetProperty("gcPauseMs").GetDouble():F0} ms, " +
            $"gen0 {dispatch.GetProperty("gen0").GetInt32() - gcBefore.GetProperty("gen0").GetInt32()}, gen2 {dispatch.GetProperty("gen2").GetInt32() - gcBefore.GetProperty("gen2").GetInt32()}");
        Stages = [.. new[] { ("read", "dbstudio.stream.read_delay"), ("decided", "dbstudio.stream.dispatch_delay"), ("written", "dbstudio.stream.delivery_delay") }
            .Select(s => (s.Item1, dispatch.GetProperty(s.Item2) is { ValueKind: System.Text.Json.JsonValueKind.Array } a
                ? (a[0].GetDouble(), a[1].GetDouble()) : (double.NaN, double.NaN)))];
        return new PhaseResult(path, acknowledged, loadSeconds, receivers.Sum(r => (long)r.Received), (long)Math.Round(perSubscriber * subscribers),
            expectedPerSubscriber is null ? receivers.Sum(r => r.Gaps) : 0, Stats.Percentile(latencies, 50), Stats.Percentile(latencies, 99), latencies.Count > 0 ? latencies[^1] : double.NaN,
            serverCpu, clientCpu, platformCs is null ? null : Stats.Percentile(notifyLatencies, 50), platformCs is null ? null : Stats.Percentile(notifyLatencies, 99),
            warmup, warm.Count > 0 ? Stats.Percentile(warm, 50) : double.NaN, warm.Count > 0 ? Stats.Percentile(warm, 99) : double.NaN);
    }

    private static async Task<List<HttpResponseMessage>> OpenAsync(HttpClient http, string path, int count, CancellationToken ct)
    {
        var list = new List<HttpResponseMessage>(count);
        // BENCH_OPEN: how many are opened at once (32; compare.sh uses 2 for both builds, as 3682b0f refused more).
        var gate = new SemaphoreSlim(int.TryParse(Environment.GetEnvironmentVariable("BENCH_OPEN"), out var open) && open > 0 ? open : 32);
        var tasks = Enumerable.Range(0, count).Select(async _ =>
        {
            await gate.WaitAsync(ct);
            try
            {
                var res = await http.SendAsync(new HttpRequestMessage(HttpMethod.Get, path), HttpCompletionOption.ResponseHeadersRead, ct);
                res.EnsureSuccessStatusCode();
                lock (list) list.Add(res);
            }
            finally { gate.Release(); }
        });
        await Task.WhenAll(tasks);
        return list;
    }

    /// <summary>Reads one stream with a minimal byte-level parser: the id line and the commit_timestamp inside data.</summary>
    private sealed class Receiver(HttpResponseMessage response)
    {
        public readonly List<double> Latencies = [];
        /// <summary>Latencies of events committed before the measured window (the warm-up).</summary>
        public readonly List<double> Warmup = [];
        /// <summary>UTC ticks from which commits are measured (before: warm-up).</summary>
        public static long MeasureFrom = long.MaxValue;
        public int Received;
        public int Gaps;
        private long _lastId = -1;

        public async Task RunAsync(CancellationToken ct)
        {
            await using var body = await response.Content.ReadAsStreamAsync(ct);
            var buffer = new byte[64 * 1024];
            var filled = 0;
            try
            {
                int n;
                while ((n = await body.ReadAsync(buffer.AsMemory(filled), ct)) > 0)
                {
                    var now = DateTime.UtcNow;
                    filled += n;
                    var span = buffer.AsSpan(0, filled);
                    var consumed = 0;
                    int end;
                    while ((end = span[consumed..].IndexOf("\n\n"u8)) >= 0)
                    {
                        Handle(span.Slice(consumed, end), now);
                        consumed += end + 2;
                    }
                    span[consumed..].CopyTo(buffer);
                    filled -= consumed;
                    if (filled == buffer.Length) Array.Resize(ref buffer, buffer.Length * 2);
                }
            }
            catch (OperationCanceledException) { }
            catch (IOException) { }
        }

        private static int Digits(ReadOnlySpan<byte> s)
        {
            var v = 0;
            foreach (var b in s) v = v * 10 + (b - '0');
            return v;
        }

        private void Handle(ReadOnlySpan<byte> frame, DateTime now)
        {
            if (!frame.StartsWith("id: "u8)) return; // comments, retry
            // Ids are opaque: gaps are found by the inserted rows' ids (bigserial, consecutive in this run).
            var at0 = frame.IndexOf("\"record\":"u8);
            var key = at0 < 0 ? -1 : frame[at0..].IndexOf("\"id\":"u8);
            if (key >= 0)
            {
                var digits = frame[(at0 + key + 5)..].TrimStart((byte)' ');
                var id = (long)Digits(digits[..digits.IndexOfAnyExceptInRange((byte)'0', (byte)'9')]);
                if (_lastId >= 0 && id != _lastId + 1) Gaps++;
                _lastId = id;
            }
            Received++;
            // "commit_timestamp":"2026-11-25T15:04:23.123456Z"
            var at = frame.IndexOf("\"commit_timestamp\":\""u8) + 20;
            var t = frame.Slice(at, 27);
            var committed = new DateTime(Digits(t[..4]), Digits(t[5..7]), Digits(t[8..10]), Digits(t[11..13]), Digits(t[14..16]),
                Digits(t[17..19]), DateTimeKind.Utc).AddTicks(Digits(t[20..26]) * 10L);
            (committed.Ticks >= Volatile.Read(ref MeasureFrom) ? Latencies : Warmup).Add((now - committed).TotalMilliseconds);
        }
    }
}
