// `DbStudio.Web --healthcheck`: a container health probe that needs no curl in the image.
namespace DbStudio.Web.Hosting;

public static class HealthProbe
{
    public static async Task<int> RunAsync(string url)
    {
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
            using var res = await http.GetAsync(url);
            return res.IsSuccessStatusCode ? 0 : 1;
        }
        catch (Exception) { return 1; }
    }
}
