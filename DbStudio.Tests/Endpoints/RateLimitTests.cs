// Rate limits on REST (issue 6 §4): a token bucket per credential and one per client address; beyond them, 429 with
// Retry-After and the error JSON. (A request refused for its key still spends tokens of its address — measured here
// as more than one each — so a client hammering with one key runs out of its address's budget sooner.)
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Endpoints;

public class RateLimitTests(TestApp app)
{
    [Fact]
    public async Task Requests_beyond_the_per_key_and_per_address_limits_get_429_with_Retry_After()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "limits");
        await using var limited = new AppFactory(app.Db.PlatformConnectionString, new Dictionary<string, string?>
        {
            ["DbStudio:Rest:RequestsPerSecondPerKey"] = "5",
            ["DbStudio:Rest:RequestsPerSecondPerIp"] = "30",
        });
        var http = limited.CreateClient();
        async Task<HttpResponseMessage> Get(string? apikey, string? bearer = null)
        {
            var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/");
            if (apikey is not null) req.Headers.Add("apikey", apikey);
            if (bearer is not null) req.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", bearer);
            return await http.SendAsync(req);
        }

        // One key: five pass, then 429 with Retry-After and the error JSON.
        var first = new List<HttpStatusCode>();
        for (var i = 0; i < 8; i++) first.Add((await Get(p.AnonKey)).StatusCode);
        Assert.Equal(5, first.Count(s => s == HttpStatusCode.OK));
        var refused = await Get(p.AnonKey);
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.True(int.Parse(refused.Headers.GetValues("Retry-After").Single()) >= 1);
        Assert.Equal("429", (await refused.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("code").GetString());

        // The other key of the same project is not held back by the first one's bucket…
        Assert.Equal(HttpStatusCode.OK, (await Get(null, p.ApiKey)).StatusCode);
        // …but the address's bucket (30 a second) runs out across keys, each of them within its own limit.
        var keys = new List<string>();
        for (var i = 0; i < 6; i++) keys.Add((await TestApp.CreateProjectAsync(owner, $"limits {i}")).AnonKey);
        var more = new List<HttpStatusCode>();
        foreach (var k in keys) for (var i = 0; i < 5; i++) more.Add((await Get(k)).StatusCode);
        Assert.Contains(HttpStatusCode.TooManyRequests, more);
        Assert.True(more.Count(x => x == HttpStatusCode.OK) < 30, string.Join(",", more.Select(x => (int)x)));

        // A second later the buckets have refilled.
        await Task.Delay(1100);
        var again = await Get(p.AnonKey);
        Assert.True(again.StatusCode == HttpStatusCode.OK, $"{again.StatusCode} {await again.Content.ReadAsStringAsync()} first={string.Join(",", first)} more={string.Join(",", more)}");
        // Pages and the management API are not REST traffic: not limited here.
        for (var i = 0; i < 20; i++) Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
    }
}
