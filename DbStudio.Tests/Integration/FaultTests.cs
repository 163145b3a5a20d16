// PostgreSQL restarted under load (issue 6 §1), on a cluster of this test's own (the shared one serves the other
// tests): REST writers and a resuming stream client run while the server is restarted with -m fast and then
// -m immediate. The app must come back by itself within 5 s, /healthz must report the outage, no acknowledged write
// may be missing, and the stream must deliver every acknowledged row exactly once.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace DbStudio.Tests.Integration;

public class FaultTests
{
    [Fact]
    public async Task A_database_restart_under_load_loses_no_acknowledged_write_and_no_stream_event()
    {
        await using var own = await OwnCluster.StartAsync("faults");
        var cluster = own.Cluster;
        var cs = own.PlatformConnectionString;
        // A load test: the per-client rate limits (1,000 a second per key by default) would refuse its writers.
        await using var factory = new AppFactory(cs, new Dictionary<string, string?>
        {
            ["DbStudio:Rest:RequestsPerSecondPerKey"] = "0", ["DbStudio:Rest:RequestsPerSecondPerIp"] = "0",
        });
        var baseUrl = factory.StartOnLoopback();

        var owner = new HttpClient { BaseAddress = baseUrl };
        var creds = new { email = $"f{Guid.NewGuid():N}@example.com", password = "fault test password" };
        (await owner.PostAsJsonAsync("/api/auth/register", creds)).EnsureSuccessStatusCode();
        var login = await (await owner.PostAsJsonAsync("/api/auth/login", creds)).Content.ReadFromJsonAsync<JsonElement>();
        owner.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", login.GetProperty("accessToken").GetString());
        var p = (await (await owner.PostAsJsonAsync("/api/projects", new { name = "faults" })).EnsureSuccessStatusCode()
            .Content.ReadFromJsonAsync<ProjectInfo>())!;
        (await owner.PostAsJsonAsync($"/api/projects/{p.Id}/sql", new { sql = "create table items (id serial primary key, n int not null)" }))
            .EnsureSuccessStatusCode();

        using var stop = new CancellationTokenSource();          // the follower and the health poller
        using var stopWriters = new CancellationTokenSource();
        var acknowledged = new ConcurrentDictionary<int, bool>();
        var failures = 0;
        var lastSuccess = Stopwatch.StartNew();
        var successTimes = new ConcurrentQueue<TimeSpan>();
        var clock = Stopwatch.StartNew();
        var next = 0;
        async Task Writer()
        {
            using var http = new HttpClient { BaseAddress = baseUrl, Timeout = TimeSpan.FromSeconds(30) };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", p.ApiKey);
            while (!stopWriters.IsCancellationRequested)
            {
                var n = Interlocked.Increment(ref next);
                try
                {
                    var res = await http.PostAsJsonAsync($"/db/{p.Id}/rest/items", new { n });
                    if (res.StatusCode == HttpStatusCode.Created)
                    {
                        acknowledged[n] = true;
                        successTimes.Enqueue(clock.Elapsed);
                    }
                    else
                    {
                        Interlocked.Increment(ref failures);
                        Assert.True((int)res.StatusCode is 503, $"a write failed with {(int)res.StatusCode}: {await res.Content.ReadAsStringAsync()}");
                        await Task.Delay(20);
                    }
                }
                catch (HttpRequestException) { Interlocked.Increment(ref failures); }
            }
        }

        // The stream client resumes with Last-Event-ID whenever its stream ends (as EventSource does).
        var streamed = new ConcurrentDictionary<int, int>();
        var reconnects = 0;
        var following = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        async Task Follower()
        {
            string? last = null; // a new subscriber gets what comes after it (the writers wait for it); ids are the server's
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await using var s = await SseClient.OpenAsync(baseUrl, $"/db/{p.Id}/rest/items/stream", p.ApiKey, last);
                    if (!s.Response.IsSuccessStatusCode) { await Task.Delay(200); continue; }
                    following.TrySetResult();
                    while (!stop.IsCancellationRequested)
                    {
                        SseEvent e;
                        try { e = await s.NextAsync(TimeSpan.FromSeconds(1)); }
                        catch (TimeoutException) { continue; }
                        catch (InvalidOperationException) { break; } // the stream ended
                        if (!string.IsNullOrEmpty(e.Id)) last = e.Id; // as EventSource: an event without id keeps the last one
                        if (e.Type == "insert") streamed.AddOrUpdate(e.Data.GetProperty("record").GetProperty("n").GetInt32(), 1, (_, c) => c + 1);
                    }
                }
                catch (HttpRequestException) { await Task.Delay(200); }
                Interlocked.Increment(ref reconnects);
            }
        }

        // /healthz, polled: it must say so while the database is away.
        var healthStatuses = new ConcurrentQueue<HttpStatusCode>();
        async Task Health()
        {
            using var http = new HttpClient { BaseAddress = baseUrl, Timeout = TimeSpan.FromSeconds(5) };
            while (!stop.IsCancellationRequested)
            {
                try { healthStatuses.Enqueue((await http.GetAsync("/healthz")).StatusCode); } catch (Exception) { /* timeout */ }
                await Task.Delay(25);
            }
        }

        var follower = Task.Run(Follower);
        await following.Task.WaitAsync(TimeSpan.FromSeconds(60)); // the stream is open before the first write
        var tasks = Enumerable.Range(0, 4).Select(_ => Task.Run(Writer)).Append(follower).Append(Task.Run(Health)).ToList();
        await Task.Delay(1500);
        var recoveries = new List<double>();
        var timeline = new List<string>();
        foreach (var immediate in new[] { false, true })
        {
            timeline.Add($"restart {(immediate ? "immediate" : "fast")} {DateTime.UtcNow:HH:mm:ss.fff}");
            await cluster.RestartAsync(immediate);
            timeline.Add($"up {DateTime.UtcNow:HH:mm:ss.fff}");
            var back = clock.Elapsed;
            // Back by itself: a write succeeds within 5 s of the server being up again.
            var deadline = Stopwatch.StartNew();
            while (!successTimes.Any(t => t > back) && deadline.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(20);
            Assert.True(successTimes.Any(t => t > back), $"no successful write within 5 s after the {(immediate ? "immediate" : "fast")} restart");
            recoveries.Add((successTimes.First(t => t > back) - back).TotalMilliseconds);
            await Task.Delay(1500);
        }
        await stopWriters.CancelAsync();
        await Task.WhenAll(tasks.Take(4));
        timeline.Add($"writers stopped {DateTime.UtcNow:HH:mm:ss.fff}");

        // Every acknowledged write is in the table…
        var present = new HashSet<int>();
        await using (var conn = new Npgsql.NpgsqlConnection(ConfinementTests.ConnectionStringFromUrl(p.ConnectionUrl)))
        {
            await conn.OpenAsync(); // as the project's owner: the platform's login has no rights in a project schema
            await using var cmd = new Npgsql.NpgsqlCommand($"SELECT n FROM proj_{p.Id}.items", conn);
            await using var r = await cmd.ExecuteReaderAsync();
            while (await r.ReadAsync()) present.Add(r.GetInt32(0));
        }
        var missing = acknowledged.Keys.Where(n => !present.Contains(n)).ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} acknowledged writes missing, e.g. {string.Join(", ", missing.Take(5))}");
        Assert.True(acknowledged.Count > 50, $"only {acknowledged.Count} writes acknowledged");

        // …and reached the stream exactly once (the follower was stopped only after the writers).
        var streamDeadline = Stopwatch.StartNew();
        while (acknowledged.Keys.Any(n => !streamed.ContainsKey(n)) && streamDeadline.Elapsed < TimeSpan.FromSeconds(10)) await Task.Delay(100);
        var unseen = acknowledged.Keys.Where(n => !streamed.ContainsKey(n)).ToList();
        var logIds = "";
        if (unseen.Count > 0)
        {
            await using var conn = new Npgsql.NpgsqlConnection(cs);
            await conn.OpenAsync();
            await using var cmd = new Npgsql.NpgsqlCommand(
                "SELECT string_agg(id || ':' || (record->>'n') || '@' || committed_at::time, ' ' ORDER BY id) FROM dbstudio_realtime.changes " +
                "WHERE (record->>'n')::int BETWEEN $1 - 3 AND $2 + 3", conn);
            cmd.Parameters.Add(new() { Value = unseen.Min() });
            cmd.Parameters.Add(new() { Value = unseen.Max() });
            logIds = (await cmd.ExecuteScalarAsync())?.ToString() ?? "";
        }
        if (unseen.Count > 0) Assert.Fail($"{unseen.Count} acknowledged rows never streamed (e.g. {string.Join(", ", unseen.Order().Take(5))}); " +
            $"{reconnects} reconnects; {string.Join("; ", timeline)}; log around them: {logIds}; streamed around: {string.Join(",", streamed.Keys.Where(k => k >= unseen.Min() - 3 && k <= unseen.Max() + 3).Order())}");
        var repeated = streamed.Where(kv => kv.Value > 1).Select(kv => kv.Key).ToList();
        Assert.True(repeated.Count == 0, $"streamed more than once: {string.Join(", ", repeated.Take(5))}");

        Assert.Contains(healthStatuses, s => s != HttpStatusCode.OK); // the outage showed
        Assert.Equal(HttpStatusCode.OK, (await owner.GetAsync("/healthz")).StatusCode);
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"acknowledged {acknowledged.Count}, failed {failures}, recoveries {string.Join(" / ", recoveries.Select(r => $"{r:F0} ms"))}, stream reconnects {reconnects}");
        await stop.CancelAsync();
        await Task.WhenAll(tasks);
    }
}
