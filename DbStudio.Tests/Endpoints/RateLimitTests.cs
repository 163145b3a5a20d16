// Rate limits on REST (issue 6 §4): a token bucket per credential and one per client address; beyond them, 429 with
// Retry-After and the error JSON. (A request refused for its key still spends tokens of its address — measured here
// as more than one each — so a client hammering with one key runs out of its address's budget sooner.)
// The limiters read the app's TimeProvider: here a FakeTimeProvider that only the test moves, so the counts are exact
// and a slow machine cannot refill a bucket in the middle of the test.
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using DbStudio.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace DbStudio.Tests.Endpoints;

public class RateLimitTests(TestApp app)
{
    [Fact]
    public async Task Requests_beyond_the_per_key_and_per_address_limits_get_429_with_Retry_After()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "limits");
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var limited = new ClockedApp(app.Db.PlatformConnectionString, clock, new Dictionary<string, string?>
        {
            ["DbStudio:Rest:RequestsPerSecondPerKey"] = "5",
            ["DbStudio:Rest:RequestsPerSecondPerIp"] = "30",
        });
        var http = limited.CreateClient();
        async Task<HttpResponseMessage> Get(string? apikey, string? bearer = null, string? project = null)
        {
            var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{project ?? p.Id}/rest/");
            if (apikey is not null) req.Headers.Add("apikey", apikey);
            if (bearer is not null) req.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", bearer);
            return await http.SendAsync(req);
        }

        // One key: five pass, then 429 with Retry-After and the error JSON.
        var first = new List<HttpStatusCode>();
        for (var i = 0; i < 8; i++) first.Add((await Get(p.AnonKey)).StatusCode);
        Assert.Equal([.. Enumerable.Repeat(HttpStatusCode.OK, 5), .. Enumerable.Repeat(HttpStatusCode.TooManyRequests, 3)], first);
        var refused = await Get(p.AnonKey);
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal("1", refused.Headers.GetValues("Retry-After").Single());
        Assert.Equal("429", (await refused.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("code").GetString());

        // The other key of the same project is not held back by the first one's bucket…
        Assert.Equal(HttpStatusCode.OK, (await Get(null, p.ApiKey)).StatusCode);
        // …but the address's bucket (30 a second) runs out across keys, each of them within its own limit. The requests
        // above took 14 of its tokens: one for each of the 6 that passed, two for each of the 4 refused for their key
        // (ASP.NET Core's middleware tries the limiters once and then once more with a wait), so 16 of these 30 pass.
        var others = new List<DbStudio.Core.Projects.ProjectInfo>();
        for (var i = 0; i < 6; i++) others.Add(await TestApp.CreateProjectAsync(owner, $"limits {i}"));
        var more = new List<HttpStatusCode>();
        foreach (var o in others) for (var i = 0; i < 5; i++) more.Add((await Get(o.AnonKey, project: o.Id)).StatusCode);
        Assert.Equal([.. Enumerable.Repeat(HttpStatusCode.OK, 16), .. Enumerable.Repeat(HttpStatusCode.TooManyRequests, 14)], more);

        // However long that took on the real clock, nothing refills until a second has passed on the app's clock…
        clock.Advance(TimeSpan.FromMilliseconds(999));
        Assert.Equal(HttpStatusCode.TooManyRequests, (await Get(p.AnonKey)).StatusCode);
        // …and a second later the buckets have refilled.
        clock.Advance(TimeSpan.FromSeconds(1));
        var again = await Get(p.AnonKey);
        Assert.True(again.StatusCode == HttpStatusCode.OK, $"{again.StatusCode} {await again.Content.ReadAsStringAsync()} first={string.Join(",", first)} more={string.Join(",", more)}");
        // Pages and the management API are not REST traffic: not limited here.
        for (var i = 0; i < 20; i++) Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
    }

    [Fact]
    public async Task End_user_auth_429_says_how_long_until_the_window_lets_another_attempt_in()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "auth limits");
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var limited = new ClockedApp(app.Db.PlatformConnectionString, clock, new Dictionary<string, string?>
        {
            ["DbStudio:Auth:AttemptsPerMinute"] = "3",
        });
        var http = limited.CreateClient();
        async Task<HttpResponseMessage> Login()
        {
            var req = new HttpRequestMessage(HttpMethod.Post, $"/db/{p.Id}/auth/login")
            {
                Content = JsonContent.Create(new { email = "nobody@example.com", password = "wrong password" }),
            };
            req.Headers.Add("apikey", p.AnonKey);
            return await http.SendAsync(req);
        }

        Assert.Equal(HttpStatusCode.Unauthorized, (await Login()).StatusCode);
        clock.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(HttpStatusCode.Unauthorized, (await Login()).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Login()).StatusCode);
        // Three in the minute: the fourth waits until the first attempt leaves the window, 50 s from now.
        var refused = await Login();
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal("50", refused.Headers.GetValues("Retry-After").Single());
        clock.Advance(TimeSpan.FromSeconds(20));
        Assert.Equal("30", (await Login()).Headers.GetValues("Retry-After").Single());
        clock.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(HttpStatusCode.Unauthorized, (await Login()).StatusCode);
        // The next one frees up when the second attempt leaves the window (it was made at +10 s).
        var next = await Login();
        Assert.Equal(HttpStatusCode.TooManyRequests, next.StatusCode);
        Assert.Equal("10", next.Headers.GetValues("Retry-After").Single());
    }
}
