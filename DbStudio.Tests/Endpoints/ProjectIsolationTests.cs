// One project cannot starve another (issue 6 §4): each project may run at most DbStudio:Rest:MaxConcurrentPerProject
// statements at once (about two per core); the rest of its requests wait their turn.
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Endpoints;

public class ProjectIsolationTests(TestApp app)
{
    [Fact]
    public async Task Five_rounds_of_slow_requests_of_one_project_do_not_block_another_projects_reads()
    {
        var cap = app.Service<Microsoft.Extensions.Options.IOptions<DbStudio.Core.DbStudioOptions>>().Value.Rest.MaxConcurrentPerProject;
        var count = 4 * cap + 2; // five rounds of one-second statements
        var owner = await app.NewUserClientAsync();
        var busy = await TestApp.CreateProjectAsync(owner, "busy");
        var quiet = await TestApp.CreateProjectAsync(owner, "quiet");
        await TestApp.SqlAsync(owner, busy.Id, "create view slow as select 1 as id from pg_sleep(1)");
        await TestApp.SqlAsync(owner, quiet.Id, "create table items (id int primary key, name text); insert into items values (1, 'fast')");

        using var http = new HttpClient { BaseAddress = app.BaseUrl, Timeout = TimeSpan.FromSeconds(60) };
        Task<HttpResponseMessage> Get(string project, string key, string path)
        {
            var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{project}/rest/{path}");
            req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
            return http.SendAsync(req);
        }
        (await Get(quiet.Id, quiet.ApiKey, "items?id=eq.1")).EnsureSuccessStatusCode(); // warm

        var clock = Stopwatch.StartNew();
        var slow = Enumerable.Range(0, count).Select(_ => Get(busy.Id, busy.ApiKey, "slow")).ToList();
        await Task.Delay(300); // the busy project now has its share of connections sleeping, and a queue
        var times = new List<double>();
        for (var i = 0; i < 5; i++)
        {
            var one = Stopwatch.StartNew();
            var res = await Get(quiet.Id, quiet.ApiKey, "items?id=eq.1");
            Assert.Equal(HttpStatusCode.OK, res.StatusCode);
            times.Add(one.Elapsed.TotalMilliseconds);
        }
        // Not a latency bound (a loaded machine makes any read slow), but the order: the quiet project's reads were
        // answered while the busy project's queue — at least five one-second rounds — was still waiting.
        Assert.True(slow.Any(t => !t.IsCompleted),
            $"the quiet project's reads waited for the busy project's queue: {string.Join(", ", times.Select(t => $"{t:F0} ms"))}");

        var results = await Task.WhenAll(slow);
        Assert.All(results, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode)); // queued, not refused
        // One-second statements, at most `cap` at a time: at least five rounds.
        Assert.True(clock.Elapsed > TimeSpan.FromSeconds(4.5), $"took {clock.Elapsed.TotalSeconds:F1} s: the cap did not hold");
    }
}
