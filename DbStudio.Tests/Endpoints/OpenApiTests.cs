using System.Text.Json;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Endpoints;

public class OpenApiTests(TestApp app)
{
    [Theory]
    [InlineData("/")]
    [InlineData("")]
    public async Task The_rest_root_describes_the_tables_in_openapi_3(string suffix)
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner);
        await TestApp.SqlAsync(owner, p.Id, "create table todos (id serial primary key, title text not null, done boolean, meta jsonb)");
        var http = app.Factory.CreateClient();
        var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest{suffix}");
        req.Headers.Add("apikey", p.AnonKey);
        var res = await http.SendAsync(req);
        Assert.Equal(System.Net.HttpStatusCode.OK, res.StatusCode);
        var doc = JsonDocument.Parse(await res.Content.ReadAsStringAsync()).RootElement;
        Assert.StartsWith("3.", doc.GetProperty("openapi").GetString());
        var todos = doc.GetProperty("components").GetProperty("schemas").GetProperty("todos");
        Assert.Equal("integer", todos.GetProperty("properties").GetProperty("id").GetProperty("type").GetString());
        Assert.Equal("boolean", todos.GetProperty("properties").GetProperty("done").GetProperty("type").GetString());
        Assert.Contains("title", todos.GetProperty("required").EnumerateArray().Select(e => e.GetString()));
        Assert.True(doc.GetProperty("paths").GetProperty("/todos").TryGetProperty("post", out _));
        var anonymous = await http.GetAsync($"/db/{p.Id}/rest{suffix}");
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, anonymous.StatusCode);
    }
}
